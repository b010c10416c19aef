"""qemu-scripts/boot-uefi.sh against fixture firmware descriptor directories: --dry-run, and the
headless wait with a stand-in QEMU."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from composer.judge.record import frame

SCRIPT = Path(__file__).parents[2] / "qemu-scripts" / "boot-uefi.sh"
pytestmark = pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")


def descriptor(
    d: Path,
    name: str,
    code: Path,
    vars_: Path,
    features: list[str],
    machines: list[str] | None = None,
) -> Path:
    doc = {
        "description": name,
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": {"filename": str(code), "format": "raw"},
            "nvram-template": {"filename": str(vars_), "format": "raw"},
        },
        "targets": [{"architecture": "x86_64", "machines": machines or ["pc-q35-*"]}],
        "features": features,
    }
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def fw(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for n in ("code", "code-sb", "vars", "vars-ms", "other-code"):
        files[n] = tmp_path / f"{n}.fd"
        files[n].write_bytes(b"\0" * 16)
    dist, etc = tmp_path / "usr", tmp_path / "etc"
    descriptor(
        dist,
        "40-sb-enrolled.json",
        files["code-sb"],
        files["vars-ms"],
        ["secure-boot", "requires-smm", "enrolled-keys"],
    )
    descriptor(dist, "50-sb.json", files["code-sb"], files["vars"], ["secure-boot", "requires-smm"])
    descriptor(dist, "60-plain.json", files["code"], files["vars"], [])
    descriptor(dist, "30-i440fx.json", files["other-code"], files["vars"], [], ["pc-i440fx-*"])
    files["usr"], files["etc"] = dist, etc
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    files["image"] = image
    return files


def run(fw: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["sh", str(SCRIPT), str(fw["image"]), "--dry-run", "--accel", "tcg"]
    argv += ["--firmware-dir", str(fw["usr"]), "--firmware-dir", str(fw["etc"]), *args]
    # a minimal environment (no HOME, no XDG_*): testers' CI jobs may look like that
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(argv, text=True, capture_output=True, check=False, env=env)


def qemu_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return next(ln for ln in proc.stdout.splitlines() if ln.startswith("qemu-system-"))


def blockdevs(line: str) -> list[dict[str, Any]]:
    """The JSON of every -blockdev in a printed command line (compact JSON: no spaces)."""
    words = line.split(" ")
    return [json.loads(words[i + 1]) for i, w in enumerate(words) if w == "-blockdev"]


def test_image_path_with_commas_stays_one_value(fw: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "a,file=x,b.qcow2"
    odd.write_bytes(fw["image"].read_bytes())
    argv = [
        "sh",
        str(SCRIPT),
        str(odd),
        "--dry-run",
        "--accel",
        "tcg",
        "--firmware-dir",
        str(fw["usr"]),
    ]
    proc = subprocess.run(argv, text=True, capture_output=True, check=False)
    nodes = {n["node-name"]: n for n in blockdevs(qemu_line(proc))}
    assert nodes["disk0-base"]["file"]["filename"] == str(odd)


def test_plain_boot_picks_the_non_secure_boot_descriptor(fw: dict[str, Path]) -> None:
    proc = run(fw, "--timeout", "60")
    line = qemu_line(proc)
    assert "60-plain.json" in proc.stderr
    lean = "smbus=off,i8042=off,vmport=off,sata=off"  # as `dps-composer boot` runs q35
    assert line.startswith(
        f"qemu-system-x86_64 -machine q35,pflash0=pflash0,pflash1=pflash1,{lean} -accel tcg "
        "-cpu max,svm=off,vmx=off "
    )
    nodes = {n["node-name"]: n for n in blockdevs(line)}
    assert nodes["pflash0"]["file"]["filename"] == str(fw["code"]) and nodes["pflash0"]["read-only"]
    base, top = nodes["disk0-base"], nodes["disk0"]
    assert base["driver"] == "qcow2" and base["backing"] is None and base["read-only"]
    assert base["file"]["filename"] == str(fw["image"]) and top["backing"] == "disk0-base"
    assert "-drive" not in line
    assert "chardev file,id=con,path=" + str(fw["image"]) + ".serial.log" in line
    assert "tpm" not in line and "smbios" not in line


def test_secure_boot_prefers_an_empty_template_and_sets_smm(
    fw: dict[str, Path], tmp_path: Path
) -> None:
    vars_ = tmp_path / "my.vars.fd"
    vars_.write_bytes(b"\0" * 16)
    line = qemu_line(run(fw, "--secure-boot", str(vars_)))
    assert (
        "-machine q35,pflash0=pflash0,pflash1=pflash1,smbus=off,i8042=off,vmport=off,sata=off,"
        "smm=on -global driver=cfi.pflash01" in line
    )
    assert f'"filename":"{fw["code-sb"]}"' in line
    assert "chardev stdio,id=con,mux=on" in line  # interactive without --timeout


def test_tpm_and_check_channel(fw: dict[str, Path]) -> None:
    proc = run(fw, "--tpm", "--check", "--timeout", "5")
    line = qemu_line(proc)
    assert proc.stdout.startswith("swtpm socket --tpm2")
    assert "-device tpm-crb,tpmdev=tpm0" in line
    assert "-smbios type=11,value=io.systemd.credential:dps-composer.check=1" in line
    assert "-chardev file,id=check,path=" in line and line.count("-serial") == 2


def test_override_and_hiding_by_file_name(fw: dict[str, Path]) -> None:
    descriptor(fw["etc"], "60-plain.json", fw["other-code"], fw["vars"], [])
    assert f'"filename":"{fw["other-code"]}"' in qemu_line(run(fw))
    (fw["etc"] / "60-plain.json").write_text("")
    proc = run(fw)
    assert proc.returncode == 2 and "no UEFI firmware descriptor" in proc.stderr


def _tree(tmp_path: Path) -> Path:
    """A boot tools tree's shape: loader, QEMU and swtpm, a descriptor naming /usr/share/OVMF."""
    tree = tmp_path / "tree"
    triplet = f"{os.uname().machine}-linux-gnu"
    for rel in (
        f"usr/lib/{triplet}/ld-linux-x86-64.so.2",
        "usr/bin/qemu-system-x86_64",
        "usr/bin/swtpm",
        "usr/share/OVMF/OVMF_CODE_4M.fd",
        "usr/share/OVMF/OVMF_VARS_4M.fd",
    ):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"\0" * 16)
    descriptor(
        tree / "usr/share/qemu/firmware",
        "60-edk2-x86_64.json",
        Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
        Path("/usr/share/OVMF/OVMF_VARS_4M.fd"),
        [],
    )
    return tree


def test_tools_root_runs_the_trees_qemu_swtpm_and_firmware(
    fw: dict[str, Path], tmp_path: Path
) -> None:
    tree = _tree(tmp_path)
    argv = ["sh", str(SCRIPT), str(fw["image"]), "--dry-run", "--accel", "tcg", "--tpm"]
    proc = subprocess.run(
        [*argv, "--tools-root", str(tree)], text=True, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    triplet = f"{os.uname().machine}-linux-gnu"
    start = (
        f"{tree}/usr/lib/{triplet}/ld-linux-x86-64.so.2 --library-path "
        f"{tree}/usr/lib/{triplet}:{tree}/lib/{triplet}"
    )
    swtpm, line = proc.stdout.splitlines()
    assert swtpm.startswith(f"{start} {tree}/usr/bin/swtpm socket --tpm2")
    assert line.startswith(
        f"{start} {tree}/usr/bin/qemu-system-x86_64 -L {tree}/usr/share/qemu -machine q35"
    )
    assert f"{tree}/usr/share/qemu/firmware/60-edk2-x86_64.json" in proc.stderr
    nodes = {n["node-name"]: n for n in blockdevs(line)}
    assert nodes["pflash0"]["file"]["filename"] == f"{tree}/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert " -smp 2 " in line  # the tree's QEMU 10 runs two vCPUs under TCG
    assert " -smp 1 " in qemu_line(run(fw))  # the host's one
    assert " -smp 3 " in qemu_line(run(fw, "--smp", "3"))
    blank = tmp_path / "a tree"
    tree.rename(blank)
    refused = subprocess.run([*argv, "--tools-root", str(blank)], capture_output=True, text=True)
    assert refused.returncode == 2 and "without blanks" in refused.stderr
    assert run(fw, "--smp", "two").returncode == 2


def test_bad_usage(fw: dict[str, Path]) -> None:
    assert run(fw, "--timeout", "soon").returncode == 2
    assert run(fw, "--bogus").returncode == 2
    missing = subprocess.run(
        ["sh", str(SCRIPT), "/nonexistent.raw"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such image file" in missing.stderr


# A stand-in for QEMU on PATH: writes the check record to the check channel's file in pieces
# (the guest writes ~8 KB at 115200 baud), as the real one would, then stays up.
FAKE_QEMU = """#!/bin/sh
for a in "$@"; do
    case $a in file,id=check,path=*) out=${a#file,id=check,path=} ;; esac
done
size=$(wc -c <"$RECORD")
i=0
while [ $((i * 512)) -lt "$size" ]; do
    dd if="$RECORD" bs=512 skip=$i count=1 status=none >>"$out"
    i=$((i + 1))
    sleep 0.3
done
exec sleep 60
"""


def with_stand_in(
    fw: dict[str, Path], tmp_path: Path, qemu: str, *args: str
) -> tuple[list[str], dict[str, str]]:
    """The script's command line and environment with ``qemu`` (a shell script) on PATH as
    qemu-system-x86_64 (TCG, the fake firmware, the serial log in ``tmp_path``)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qemu-system-x86_64").write_text(qemu)
    (bin_dir / "qemu-system-x86_64").chmod(0o755)
    argv = ["sh", str(SCRIPT), str(fw["image"]), "--accel", "tcg", *args]
    argv += ["--firmware-dir", str(fw["usr"]), "--serial-log", str(tmp_path / "serial.log")]
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "TMPDIR": str(tmp_path)}
    return argv, env


def run_headless(
    fw: dict[str, Path], tmp_path: Path, record: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "record").write_text(record)
    argv, env = with_stand_in(fw, tmp_path, FAKE_QEMU, "--check", "--timeout", "60")
    return run_to_its_end(argv, {**env, "RECORD": str(tmp_path / "record")})


def run_to_its_end(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the script; once it has exited, nothing it left behind may hold its output open (a
    caller reading to the end would wait for that process too)."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    open_fds = set(chunks)

    def read(ready: list[int]) -> None:
        for fd in ready:
            if data := os.read(fd, 65536):
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)

    while open_fds and proc.poll() is None:
        read(select.select(list(open_fds), [], [], 1)[0])
    proc.wait(timeout=120)
    while open_fds:  # the script is gone: its pipes end now, or someone else holds them
        ready = select.select(list(open_fds), [], [], 5)[0]
        assert ready, "a process the script left behind holds its output open"
        read(ready)
    out, err = (b"".join(chunks[f.fileno()]).decode() for f in (proc.stdout, proc.stderr))
    proc.stdout.close()
    proc.stderr.close()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_headless_wait_takes_the_check_record_only_when_whole(
    fw: dict[str, Path], tmp_path: Path
) -> None:
    payload = json.dumps({"version": 1, "pad": "x" * 3000})
    proc = run_headless(fw, tmp_path, frame(payload) + "\n")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line == frame(payload)
    assert not list(tmp_path.glob("boot-uefi.*"))  # its work directory is gone


def test_headless_wait_reports_a_damaged_record(fw: dict[str, Path], tmp_path: Path) -> None:
    payload = json.dumps({"version": 1, "pad": "x" * 600})
    proc = run_headless(fw, tmp_path, frame(payload).replace('"version"', '"versjon"') + "\n")
    assert proc.returncode == 1
    assert "arrived damaged" in proc.stderr


def test_qemu_dies_with_the_script_even_on_sigkill(fw: dict[str, Path], tmp_path: Path) -> None:
    argv, env = with_stand_in(fw, tmp_path, "#!/bin/sh\nexec sleep 300\n", "--timeout", "300")
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    qemu = next(int(m[1]) for ln in proc.stderr if (m := re.search(r"qemu: pid (\d+)", ln)))
    comm = Path(f"/proc/{qemu}/comm")
    while comm.read_text().strip() != "sleep":  # the stand-in runs (setpriv has done its part)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    fd = os.pidfd_open(qemu)
    try:
        assert select.select([fd], [], [], 30)[0], "QEMU outlived the killed script"
    finally:
        os.close(fd)


def test_a_qemu_that_ignores_term_is_killed_and_the_output_ends_with_the_script(
    fw: dict[str, Path], tmp_path: Path
) -> None:
    """The cleanup's TERM is ignored: KILL follows after its grace (10 s), and no timer left
    behind holds the script's output open (a caller reading to the end would wait for it)."""
    ignores_term = "#!/bin/sh\ntrap '' TERM\nexec sleep 300\n"
    proc = run_to_its_end(*with_stand_in(fw, tmp_path, ignores_term, "--timeout", "1"))
    assert proc.returncode == 1, proc.stderr
    qemu = int(re.findall(r"qemu: pid (\d+)", proc.stderr)[0])
    assert not Path(f"/proc/{qemu}").exists()
    assert not list(tmp_path.glob("boot-uefi.*"))
