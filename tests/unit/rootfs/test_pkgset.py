"""What apt-get --print-uris says a download will fetch (the size a download's progress counts
to), and mmdebstrap's minbase set as read from the archive's index."""

from __future__ import annotations

from pathlib import Path

from composer.rootfs.pkgset import Uri, minbase, parse_print_uris

# `apt-get -q --print-uris download -- hello tmux` on trixie, verbatim (stderr's warning too:
# it is not a URI line).
PRINT_URIS = """\
'http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-5_amd64.deb' hello_2.10-5_amd64.deb 53228 SHA256:4536aabbb75ec21ffe161099ee4b97274945770bdb0682e25ec322421211ca5e
'http://deb.debian.org/debian/pool/main/t/tmux/tmux_3.5a-3_amd64.deb' tmux_3.5a-3_amd64.deb 490296 SHA256:e6b6aa51780044e2c4a0e618c33f832b70ec80caa30303e6c254a0c851b5af78
W: Unable to read /nonexistent/ - DirectoryExists (2: No such file or directory)
"""  # noqa: E501


def test_print_uris_lines_give_file_names_and_sizes() -> None:
    assert parse_print_uris(PRINT_URIS) == [
        Uri(
            "http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-5_amd64.deb",
            "hello_2.10-5_amd64.deb",
            53228,
        ),
        Uri(
            "http://deb.debian.org/debian/pool/main/t/tmux/tmux_3.5a-3_amd64.deb",
            "tmux_3.5a-3_amd64.deb",
            490296,
        ),
    ]
    assert parse_print_uris("") == []


def test_minbase_is_apt_and_every_required_or_essential_package(tmp_path: Path) -> None:
    """What mmdebstrap's minbase installs, read from the index: a field's name only counts at
    the start of a line (not in a description's continuation lines), and the last stanza
    counts too."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists/deb.example_dists_x_main_binary-amd64_Packages").write_text(
        "Package: base-files\nEssential: yes\nPriority: required\n\n"
        "Package: mawk\nVersion: 1\nPriority: required\n\n"
        "Package: vim\nPriority: optional\nDescription: an editor\n"
        " Priority: required\n Essential: yes\n\n"
        "Package: tzdata\nPriority: important\n\n"
        "Package: dash\nVersion: 2\nEssential: yes\n"
    )
    assert minbase(tmp_path) == ["apt", "base-files", "dash", "mawk"]
