"""[[customizations.repositories]] values before they reach dnf.conf: no control
characters, parsed URLs of accepted schemes, signatures checked unless turned off by name,
inline armored keys written out and named (never dropped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer.blueprint.repositories import Repository
from composer.core.errors import BlueprintError
from composer.plan.plan import plan_text
from composer.rootfs.dnf import dnf_conf, write_inline_keys

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGX...\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"
BASE = 'name = "r"\ndistro = "fedora-42"\n[[customizations.repositories]]\nid = "extra"\n'

REFUSED = [
    ('baseurls = ["https://example.org/r\\nsslverify=0"]\ngpgcheck = false', "baseurls", "control"),
    ('baseurls = ["https://a\\n[evil]\\nbaseurl=http://x"]\ngpgcheck = false', "baseurls", "control"),
    ('name = "x\\nsslverify=0"\nbaseurls = ["https://a/r"]\ngpgcheck = false', "name", "control"),
    ('metalink = "https://a/m\\rgpgcheck=0"\ngpgcheck = false', "metalink", "control"),
    ('mirrorlist = "javascript:alert(1)"\ngpgcheck = false', "mirrorlist", "https://"),
    ('baseurls = ["gopher://a/r"]\ngpgcheck = false', "baseurls", "https://"),
    ('baseurls = ["https:///nohost"]\ngpgcheck = false', "baseurls", "no host"),
    ('baseurls = ["file://otherhost/r"]\ngpgcheck = false', "baseurls", "absolute path"),
    ('baseurls = ["https://a/r b"]\ngpgcheck = false', "baseurls", "white space"),
    ('baseurls = ["https://a/r"]', "repositories[0]", "gpgcheck = false"),  # unsigned by default
    ('baseurls = ["https://a/r"]\ngpgcheck = true', "repositories[0]", "gpgkeys"),
    ('baseurls = ["https://a/r"]\ngpgcheck = false\nrepo_gpgcheck = true', "repositories[0]", "gpgkeys"),
    ('baseurls = ["https://a/r"]\ngpgkeys = ["not a key"]', "gpgkeys", "armored"),
    ('baseurls = ["https://a/r"]\nfilename = "../etc/x.repo"\ngpgcheck = false', "filename", "file name"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "key", "words"), REFUSED)
def test_repository_values_are_checked(toml: str, key: str, words: str) -> None:
    with pytest.raises(BlueprintError) as exc:
        plan_text(BASE + toml + "\n", "r.toml")
    assert key in exc.value.key and words in exc.value.message, exc.value
    assert exc.value.line is not None and exc.value.line >= 3


def test_inline_keys_are_written_and_named(tmp_path: Path) -> None:
    plan = plan_text(
        BASE + 'baseurls = ["https://example.org/$releasever/$basearch/"]\n'
        f'gpgkeys = ["https://example.org/key.asc", """{KEY}"""]\n'
    )
    repo = plan.customizations.repositories[0]
    assert repo.inline_keys == (KEY,)
    inline = write_inline_keys([repo], tmp_path / "keys")
    conf = dnf_conf([repo], tmp_path, inline)
    written = tmp_path / "keys/extra-0.asc"
    assert written.read_text() == KEY
    assert f"gpgkey=https://example.org/key.asc file://{written}\n" in conf
    assert "gpgcheck=1\n" in conf and "BEGIN PGP" not in conf
    with pytest.raises(ValueError, match="not written out"):
        dnf_conf([repo], tmp_path)  # a key is never dropped silently


def test_unsigned_repository_must_say_so() -> None:
    repo = Repository(id="u", baseurls=("https://a/r",), gpgcheck=False)
    assert repo.dnf_options()["gpgcheck"] == "0"
    signed = Repository(id="s", baseurls=("https://a/r",), gpgkeys=("https://a/k",))
    assert signed.dnf_options()["gpgcheck"] == "1"  # on without being asked


def test_file_repository_on_this_host() -> None:
    repo = Repository(id="l", baseurls=("file:///srv/repo",), gpgcheck=False)
    assert repo.dnf_options()["baseurl"] == "file:///srv/repo"
