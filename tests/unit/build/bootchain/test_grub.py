"""grub.cfg rendering: titles from the UKI's .osrel and .uname, newest entry first and default."""

from __future__ import annotations

import pytest

from composer.build.bootchain.grub import (
    GrubEntry,
    grub_quote,
    newest_first,
    render_grub_cfg,
    uki_entry,
    version_key,
)
from composer.core.errors import ComposerError
from composer.spec import osrelease

OSREL = b'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nID=debian\n\0\0'


def sections(uname: str, osrel: bytes = OSREL) -> dict[str, bytes]:
    return {".linux": b"MZ", ".osrel": osrel, ".uname": uname.encode() + b"\0"}


def test_title_from_osrel_pretty_name_and_uname() -> None:
    e = uki_entry("debian-6.12.43+deb13-amd64.efi", sections("6.12.43+deb13-amd64"))
    assert e.title == "Debian GNU/Linux 13 (trixie) (6.12.43+deb13-amd64)"
    assert e.id == "debian-6.12.43+deb13-amd64"
    assert e.path == "/EFI/Linux/debian-6.12.43+deb13-amd64.efi"


def test_title_falls_back_to_name_and_file_name_version() -> None:
    s = {".linux": b"MZ", ".osrel": b"NAME=Fedora\n"}
    e = uki_entry("fedora-6.9.1-200.fc40.x86_64.efi", s)
    assert e.title == "Fedora (6.9.1-200.fc40.x86_64)"


def test_not_a_uki_is_refused() -> None:
    with pytest.raises(ComposerError, match="no .linux"):
        uki_entry("memtest.efi", {".text": b""})


def test_os_release_value_unquotes() -> None:
    text = 'A=\'single q\'\nB="with \\"escape\\""\nC=plain\n'
    assert osrelease.value(text, "A") == "single q"
    assert osrelease.value(text, "B") == 'with "escape"'
    assert osrelease.value(text, "C") == "plain"
    assert osrelease.value(text, "D") is None


def test_version_order_is_numeric() -> None:
    assert version_key("6.12.10") > version_key("6.12.9")
    assert version_key("6.12.9+deb13-amd64") > version_key("6.1.0-28-amd64")


def _entries(*unames: str) -> list[GrubEntry]:
    return [uki_entry(f"debian-{u}.efi", sections(u)) for u in unames]


def test_newest_first_and_default() -> None:
    entries = _entries("6.12.9+deb13-amd64", "6.12.43+deb13-amd64", "6.1.0-28-amd64")
    assert [e.version for e in newest_first(entries)] == [
        "6.12.43+deb13-amd64",
        "6.12.9+deb13-amd64",
        "6.1.0-28-amd64",
    ]
    cfg = render_grub_cfg(entries, timeout=1)
    assert "set default='debian-6.12.43+deb13-amd64'" in cfg
    titles = [ln for ln in cfg.splitlines() if ln.startswith("menuentry ")]
    assert titles[0].startswith("menuentry 'Debian GNU/Linux 13 (trixie) (6.12.43+deb13-amd64)'")
    assert len(titles) == 3
    assert cfg.count("chainloader '/EFI/Linux/debian-") == 3


def test_serial_console_and_timeout() -> None:
    cfg = render_grub_cfg(_entries("6.12.43+deb13-amd64"), timeout=1)
    assert "serial --unit=0 --speed=115200" in cfg
    assert "terminal_output serial console" in cfg
    assert "terminal_input serial console" in cfg
    assert "set timeout=1\n" in cfg
    assert "set timeout_style=menu" in cfg


def test_quotes_in_titles_are_safe() -> None:
    osrel = b'PRETTY_NAME="Bob\'s OS"\n'
    cfg = render_grub_cfg([uki_entry("bob-1.0.efi", sections("1.0", osrel))], timeout=0)
    assert "menuentry 'Bob'\\''s OS (1.0)'" in cfg
    assert grub_quote("a'b") == "'a'\\''b'"


def test_no_uki_no_menu() -> None:
    with pytest.raises(ComposerError, match="no UKI"):
        render_grub_cfg([], timeout=1)
