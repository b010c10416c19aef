"""kickstart/post/dps-fixup.sh, the plain-shell twin of `fixup --running`, against the Python
rules it mirrors (composer/spec/dps.py, composer/fixup/edits.py, composer/fixup/plan.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composer.fixup import edits
from composer.fixup.plan import designator_for
from composer.spec import dps

SCRIPT = Path(__file__).parents[3] / "kickstart" / "post" / "dps-fixup.sh"
ARCHES = ("x86-64", "x86", "arm64", "arm", "riscv64", "ppc64-le", "s390x", "loongarch64")
# Debian images have mawk, Fedora gawk: the awk programs must agree with Python on both.
AWKS = [a for a in ("mawk", "gawk", "busybox") if shutil.which(a)]


def sh(
    snippet: str, *args: str, awk: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    prelude = f"DPS_FIXUP_LIB=1 . {SCRIPT}\n"
    if awk == "busybox":
        prelude += 'awk() { busybox awk "$@"; }\n'
    elif awk:
        prelude += f'awk() {{ {awk} "$@"; }}\n'
    return subprocess.run(
        ["sh", "-c", prelude + snippet, "sh", *args], input=stdin, capture_output=True, text=True
    )


def test_script_is_posix_sh() -> None:
    assert subprocess.run(["sh", "-n", str(SCRIPT)]).returncode == 0
    if shutil.which("dash"):
        assert subprocess.run(["dash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize("arch", ARCHES)
def test_type_table_matches_dps(arch: str) -> None:
    for d in ("root", "usr", "esp", "xbootldr", "swap", "home", "srv", "var", "tmp"):
        out = sh('dps_type "$1" "$2"', d, arch).stdout.strip()
        assert out == str(dps.by_designator(d, arch).uuid), (d, arch)


@pytest.mark.parametrize(
    ("machine", "token"),
    [("x86_64", "x86-64"), ("i686", "x86"), ("aarch64", "arm64"), ("armv7l", "arm"),
     ("riscv64", "riscv64"), ("ppc64le", "ppc64-le"), ("s390x", "s390x")],
)  # fmt: skip
def test_arch_names_match_dps(machine: str, token: str) -> None:
    assert sh('dps_arch "$1"', machine).stdout.strip() == token == dps.native_arch(machine)


@pytest.mark.parametrize(
    "target", ["/", "/usr", "/home/", "/srv", "/var", "/var/tmp", "/efi", "/boot", "/boot/efi",
               "/data", "none"],
)  # fmt: skip
@pytest.mark.parametrize("fstype", ["ext4", "vfat", "swap"])
@pytest.mark.parametrize("xbootldr", [False, True])
def test_designator_for_matches(target: str, fstype: str, xbootldr: bool) -> None:
    out = sh('designator_for "$1" "$2" "$3"', target, fstype, "1" if xbootldr else "0")
    assert (out.stdout.strip() or None) == designator_for(target, fstype, xbootldr)


OPTION = st.sampled_from(
    ["defaults", "rw", "ro", "noatime", "relatime", "nofail", "x-systemd.growfs", "subvol=root",
     "errors=remount-ro", "discard", "umask=077", "sw", "pri=0", ""]
)  # fmt: skip


@given(st.lists(OPTION, max_size=4))
@settings(max_examples=60, deadline=None)
def test_options_reproducible_matches(options: list[str]) -> None:
    joined = ",".join(options)
    out = sh('options_reproducible "$1"', joined)
    assert (out.returncode == 0) == edits.options_reproducible(joined)


WORD = st.sampled_from(
    ["root=/dev/vda2", "root=PARTUUID=ab-cd", "rootfstype=ext4", "rootflags=subvol=@", "quiet",
     "console=ttyS0", '"root=a b"', 'x="y z"', "ro", '"unterminated', "rootwait", "=root"]
)  # fmt: skip
SEP = st.sampled_from([" ", "  ", "\t", " \t "])


@st.composite
def cmdline(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORD, max_size=6))
    return draw(SEP).join(words) if words else ""


@st.composite
def cmdline_file(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(
        st.sampled_from(["/etc/kernel/cmdline", "/etc/default/grub", "/efi/loader/entries/a.conf"])
    )
    if kind == "/etc/kernel/cmdline":
        return kind, draw(cmdline()) + draw(st.sampled_from(["\n", "", " \n"]))
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        if kind.endswith("grub"):
            key = draw(
                st.sampled_from(
                    ["GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT", "GRUB_TIMEOUT"]
                )
            )
            q = draw(st.sampled_from(['"', "'", ""]))
            lines.append(f"{key}={q}{draw(cmdline())}{q}{draw(st.sampled_from(['', '  ']))}")
        else:
            head = draw(st.sampled_from(["options ", "options\t", "title ", "linux "]))
            lines.append(head + draw(cmdline()))
    return kind, "".join(f"{ln}\n" for ln in lines)


@pytest.mark.parametrize("awk", AWKS)
@given(case=cmdline_file())
@settings(max_examples=120, deadline=None)
def test_cmdline_edits_match(
    awk: str, case: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    kind, text = case
    path = tmp_path_factory.mktemp("f") / kind.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    out = sh('edit_cmdline_file "$1"', str(path), awk=awk)
    want = edits.edit_cmdline_file(kind, text)
    if want == text:
        assert out.returncode == 1 and out.stdout == "", (text, out)
    else:
        assert out.returncode == 0, (text, out.stderr)
        assert out.stdout == want, (text, out.stdout, want)


def test_dry_run_outside_a_gpt_system_changes_nothing() -> None:
    out = subprocess.run(
        ["sh", str(SCRIPT), "--dry-run", "--loader", "bogus"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "unknown loader" in out.stdout
