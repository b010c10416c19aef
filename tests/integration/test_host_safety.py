"""A real Debian tree on a shared build host: blueprint paths under /var/run-style links are
refused before anything is built, customizations through the tree's links land inside the
image (read back from the built image), and the host is unchanged.

The second build is the default blueprint with customizations added: it takes the root tree
the session's default build cached, so it costs the image stages only (no second package
installation)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from composer.core.secret import crypt
from composer.image.read import read_ext4_file

from .conftest import ROOT, composer, manifest

pytestmark = pytest.mark.integration

DEFAULT = ROOT / "blueprints/debian-uki-sdboot.toml"
NAME = "debian-uki-sdboot"
TAG = f"dps-safety-{uuid.uuid4().hex[:10]}"  # names nothing on the host has
KEY = f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpsLXNhZmV0eS10ZXN0LWtleS1vbmx5LW5vdC11c2Vk {TAG}"

HOSTILE = f"""
[[customizations.files]]
path = "/var/run/{TAG}/app.conf"
data = "x=1\\n"

[[customizations.directories]]
path = "/var/lock/{TAG}"

[[customizations.user]]
name = "runner"
home = "/var/run/{TAG}"
key = "{KEY}"

[[customizations.disk.partitions]]
mountpoint = "/var/run/{TAG}"
"""

INSIDE = f"""
[[customizations.group]]
name = "svc"
gid = 1500

[[customizations.user]]
name = "svc"
home = "/srv/{TAG}"
gid = 1500
key = "{KEY}"

[[customizations.files]]
path = "/lib/systemd/system/{TAG}.service"
data = "[Unit]\\nDescription=through the merged-/usr link\\n[Service]\\nExecStart=/bin/true\\n"

[[customizations.directories]]
path = "/srv/{TAG}/data"
mode = "0750"
user = "svc"
group = "svc"
"""


def _with(extra: str, dest: Path) -> Path:
    text = DEFAULT.read_text().replace("[customizations]", extra + "\n[customizations]", 1)
    dest.write_text(text)
    return dest


def _host_state() -> dict[str, bool]:
    """Where an escaped write would have gone on the host."""
    places = [f"/run/{TAG}", f"/run/lock/{TAG}", f"/srv/{TAG}", f"/home/{TAG}",
              f"/usr/lib/systemd/system/{TAG}.service"]  # fmt: skip
    return {p: os.path.lexists(p) for p in places}


def test_var_run_paths_are_refused_before_building(tmp_path: Path) -> None:
    before = _host_state()
    out = tmp_path / "out"
    proc = composer("build", str(_with(HOSTILE, tmp_path / "hostile.toml")), "-o", str(out),
                    check=False, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "customizations.files[0].path" in proc.stderr and "/run" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())
    assert _host_state() == before == dict.fromkeys(before, False)
    for key, snippet in (
        ("customizations.directories[0].path", f'[[customizations.directories]]\npath = "/var/lock/{TAG}"'),
        ("customizations.user[0].home", f'[[customizations.user]]\nname = "r"\nhome = "/var/run/{TAG}"'),
        ("customizations.disk.partitions[0].mountpoint",
         f'[[customizations.disk.partitions]]\nmountpoint = "/var/run/{TAG}"'),
    ):  # fmt: skip
        plan = composer("plan", str(_with(snippet, tmp_path / "one.toml")), check=False)
        assert plan.returncode == 2 and key in plan.stderr, plan.stderr


def test_customizations_through_links_land_in_the_image(
    default_image: Path, tmp_path: Path
) -> None:
    before = _host_state()
    out = tmp_path / "out"
    composer("build", str(_with(INSIDE, tmp_path / "inside.toml")), "-o", str(out))
    m = manifest(out)
    assert m["cache"]["root"] == "hit", m["cache"]  # the default build's root tree
    raw = out / f"{NAME}.raw"
    root = m["disk"]["partitions"][-1]["offset"]

    def read(path: str) -> bytes:
        return read_ext4_file(raw, root, path)

    assert read(f"/usr/lib/systemd/system/{TAG}.service").startswith(b"[Unit]")
    assert read(f"/srv/{TAG}/.ssh/authorized_keys") == (KEY + "\n").encode()
    stat_out = subprocess.run(
        ["debugfs", "-R", f"stat /srv/{TAG}/data", f"{raw}?offset={root}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Mode:  0750" in stat_out and "Group:  1500" in stat_out, stat_out
    # the default user's generated password: in a 0600 file beside the image, and the one
    # the image's shadow holds (what the README tells a newcomer to log in with)
    pw_file = out / f"{NAME}.admin.password"
    assert pw_file.stat().st_mode & 0o777 == 0o600
    password = pw_file.read_text().strip()
    shadow = read("/etc/shadow").decode()
    entry = next(ln for ln in shadow.splitlines() if ln.startswith("admin:")).split(":")[1]
    setting = entry.rsplit("$", 1)[0]
    assert entry.startswith("$y$") and crypt(password, setting) == entry
    log = (out / f"{NAME}.build.log").read_text()
    assert "$y$" not in log and "$6$" not in log and password not in log
    assert _host_state() == before == dict.fromkeys(before, False)
