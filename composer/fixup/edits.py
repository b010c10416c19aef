"""Pure text edits of the files that name the root file system: fstab and kernel command lines.

kickstart/post/dps-fixup.sh does the same in sh + awk; tests/unit/test_fixup_twin.py holds
the two to the same results.
"""

from __future__ import annotations

import re
from collections.abc import Collection

# Arguments made redundant by root discovery. rootflags= stays: gpt-auto honours it.
ROOT_ARGS = ("root", "rootfstype")
FSTAB_MARK = "# dps-composer fixup: found by its partition type: "
# Mount options that a partition found by its type gets as well (or that only matter to
# fstab itself); anything else (subvol=, ro, …) would be lost by dropping the line.
NEUTRAL_OPTIONS = frozenset(
    {"defaults", "rw", "auto", "async", "nouser", "relatime", "errors=remount-ro",
     "nofail", "discard", "sw", "pri=0"}
)  # fmt: skip
_WORD = re.compile(r'(?:[^\s"]+|"[^"]*"?)+')
_GRUB_VAR = re.compile(r'^(\s*GRUB_CMDLINE_LINUX(?:_DEFAULT)?=)(["\']?)(.*?)\2(\s*)$')
_BLS_OPTIONS = re.compile(r"^(\s*options)(\s+)(.*?)(\s*)$")


def cmdline_words(cmdline: str) -> list[str]:
    """Split a kernel command line as the kernel does: on blanks, keeping "quoted blanks"."""
    return _WORD.findall(cmdline)


def is_root_arg(word: str) -> bool:
    key = word.split("=", 1)[0].strip('"')
    return "=" in word and key in ROOT_ARGS


def strip_root_args(cmdline: str) -> str:
    """The command line without root=/rootfstype=; unchanged (byte for byte) if it has none."""
    words = cmdline_words(cmdline)
    if not any(is_root_arg(w) for w in words):
        return cmdline
    return " ".join(w for w in words if not is_root_arg(w))


def root_args(cmdline: str) -> list[str]:
    return [w for w in cmdline_words(cmdline) if is_root_arg(w)]


def edit_kernel_cmdline(text: str) -> str:
    """/etc/kernel/cmdline: one line of arguments."""
    stripped = strip_root_args(text.strip())
    return text if stripped == text.strip() else stripped + "\n"


def edit_bls_entry(text: str) -> str:
    """A Boot Loader Specification Type #1 entry: root= out of its `options` lines."""
    out = []
    for line in text.splitlines(keepends=True):
        m = _BLS_OPTIONS.match(line.rstrip("\n"))
        if m and root_args(m.group(3)):
            rest = strip_root_args(m.group(3))
            if rest:
                out.append(f"{m.group(1)}{m.group(2)}{rest}\n")
            continue
        out.append(line)
    return "".join(out)


def edit_grub_default(text: str) -> str:
    """/etc/default/grub: root= out of GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT."""
    out = []
    for line in text.splitlines(keepends=True):
        m = _GRUB_VAR.match(line.rstrip("\n"))
        if m and root_args(m.group(3)):
            q = m.group(2) or '"'
            line = f"{m.group(1)}{q}{strip_root_args(m.group(3))}{q}{m.group(4)}\n"
        out.append(line)
    return "".join(out)


def edit_cmdline_file(path: str, text: str) -> str:
    """Dispatch on the kind of file."""
    if path.endswith("/etc/default/grub"):
        return edit_grub_default(text)
    if "/loader/entries/" in path:
        return edit_bls_entry(text)
    return edit_kernel_cmdline(text)


def fstab_entries(text: str) -> list[tuple[int, list[str]]]:
    """(line index, fields) of each entry; comments and blank lines skipped."""
    entries = []
    for i, line in enumerate(text.splitlines()):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            entries.append((i, fields))
    return entries


def fstab_unescape(field: str) -> str:
    """fstab octal escapes (\\040 for a blank)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def options_reproducible(options: str) -> bool:
    """True when dropping an fstab line loses nothing: only neutral or x-systemd options."""
    for opt in options.split(","):
        if opt and opt not in NEUTRAL_OPTIONS and not opt.startswith("x-systemd."):
            return False
    return True


def comment_out(text: str, indices: Collection[int]) -> str:
    """fstab with the given lines turned into dps-composer comments."""
    lines = text.splitlines(keepends=True)
    for i in indices:
        body = lines[i].rstrip("\n")
        lines[i] = f"{FSTAB_MARK}{body}\n"
    return "".join(lines)
