"""Secrets: never in an argument list or the build log, blinded in cache keys, hidden in plan
output; generated passwords are stable per cache and private; the default blueprint ships
no known password."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from composer.blueprint.customizations import Customizations, User
from composer.build import keys as stage_keys
from composer.build.facts import Facts
from composer.build.stages.sequence import STAGES
from composer.core.hashing import key_of
from composer.core.log import log_file
from composer.core.secret import (
    SecretError,
    blind,
    cache_secret,
    crypt_hash,
    generated_hash,
    generated_password,
    write_password_file,
)
from composer.plan.plan import Plan, plan_text
from composer.rootfs import customize

from ..cli_run import ROOT, cli

HASH = "$6$dpscomposer$1vMrfURjjVclFYnUSH6H1u5BJrEhC7DHN4nQ3VpRjd1YTCICNztFDNgHYvdHGztZqUnpoIg6raBoT4NEljWRu0"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="useradd --root needs root")


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "home").mkdir()
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tree / "etc/group").write_text("root:x:0:\nsudo:x:27:\n")
    (tree / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (tree / "etc/gshadow").write_text("root:*::\nsudo:*::\n")
    for f in ("shadow", "gshadow"):
        os.chmod(tree / "etc" / f, 0o640)
    return tree


@needs_root
def test_password_hash_reaches_no_argument_list_or_log(tmp_path: Path) -> None:
    tree, log = _tree(tmp_path), tmp_path / "build.log"
    users = (
        User(name="ops", password=HASH, groups=("sudo",), description="-D --root /"),
        User(name="gen", generate_password=True),
    )
    with log_file(log):
        customize.apply(tree, Customizations(user=users), secret=b"s" * 32, image="img")
    shadow = (tree / "etc/shadow").read_text()
    assert f"ops:{HASH}:" in shadow
    assert f"gen:{generated_hash(b's' * 32, 'img', 'gen')}:" in shadow
    text = log.read_text()
    assert "$6$" not in text and "$y$" not in text and "--password" not in text
    assert "--comment=-D --root /" in text  # an option value, joined: never an option
    assert "ops:x:" in (tree / "etc/passwd").read_text()
    assert (tree / "home/ops").is_dir() and not Path("/home/ops").exists()


def test_cache_keys_hold_no_password(tmp_path: Path) -> None:
    base = 'name = "k"\n[[customizations.user]]\nname = "u"\n'
    weak = plan_text(base + 'password = "admin"\n')
    hashed = plan_text(base + f'password = "{HASH}"\n')
    secret = cache_secret(tmp_path)
    for p, pw in ((weak, "admin"), (hashed, HASH)):
        blinded = json.dumps(stage_keys.blinded(p.customizations, secret))
        assert pw not in blinded and blind(secret, pw) in blinded
        derived: dict[str, str] = {}
        for stage in STAGES:  # what every stage's key is made of
            material = stage_keys.material(stage, p, _facts(secret), derived)
            assert pw not in json.dumps(material)
            derived[stage.name] = key_of(material)

    def image_key(p: Plan, secret: bytes) -> str:
        return stage_keys.derive(p, _facts(secret), STAGES)["image"]

    key = image_key(weak, secret)
    assert key == image_key(weak, secret)
    assert key != image_key(weak, b"x" * 32)
    other = plan_text(base + 'password = "admin2"\n')
    assert key != image_key(other, secret)


def _facts(secret: bytes) -> Facts:
    return Facts("c", "t", (), {}, "i", 1, None, secret)


def test_cache_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = cache_secret(tmp_path / "c")
    assert first == cache_secret(tmp_path / "c") and len(first) == 32
    assert stat.S_IMODE((tmp_path / "c/secret.key").stat().st_mode) == 0o600
    os.chmod(tmp_path / "c/secret.key", 0o644)
    with pytest.raises(SecretError, match="0600"):
        cache_secret(tmp_path / "c")


def test_generated_password_is_stable_per_cache_and_private(tmp_path: Path) -> None:
    a, b = b"a" * 32, b"b" * 32
    pw = generated_password(a, "img", "admin")
    assert pw == generated_password(a, "img", "admin") and len(pw) == 20
    assert pw != generated_password(b, "img", "admin") != generated_password(a, "img", "root")
    assert generated_hash(a, "img", "admin") == generated_hash(a, "img", "admin")
    assert generated_hash(a, "img", "admin").startswith("$y$")
    setting = generated_hash(a, "img", "admin").rsplit("$", 1)[0]
    assert crypt_hash(pw, b"0" * 16) != generated_hash(a, "img", "admin")  # its own salt
    assert setting != crypt_hash(pw, b"0" * 16).rsplit("$", 1)[0]
    path = write_password_file(tmp_path, a, "img", "admin")
    assert path.read_text() == pw + "\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_plan_output_hides_passwords(tmp_path: Path) -> None:
    bp = tmp_path / "bp.toml"
    bp.write_text(f'name = "k"\n[[customizations.user]]\nname = "u"\npassword = "{HASH}"\n')
    proc = cli("plan", bp)
    assert proc.returncode == 0, proc.stderr
    assert HASH not in proc.stdout and "<crypt hash: not shown>" in proc.stdout


def test_debian_blueprints_ship_no_known_password() -> None:
    """debian-dps-layout.toml shows a plain-text password on purpose (its blueprint says so)."""
    for path in sorted((ROOT / "blueprints").glob("debian-uki-*.toml")):
        data = tomllib.loads(path.read_text())
        for user in data.get("customizations", {}).get("user", []):
            assert "password" not in user, (path, user)
    default = tomllib.loads((ROOT / "blueprints/debian-uki-sdboot.toml").read_text())
    assert default["customizations"]["user"][0]["generate_password"] is True


def test_generate_password_and_password_exclude_each_other() -> None:
    from composer.core.errors import BlueprintError

    with pytest.raises(BlueprintError, match="not both"):
        plan_text(
            'name = "k"\n[[customizations.user]]\nname = "u"\npassword = "x"\ngenerate_password = true\n'
        )


@pytest.mark.skipif(shutil.which("chpasswd") is None, reason="needs shadow tools")
def test_crypt_hash_is_what_chpasswd_would_accept() -> None:
    h = crypt_hash("secret", b"0123456789abcdef")
    assert h.startswith("$y$j9T$") and h == crypt_hash("secret", b"0123456789abcdef")


def test_kickstart_refuses_generate_password(tmp_path: Path) -> None:
    bp = tmp_path / "ks.toml"
    bp.write_text(
        'name = "k"\ndistro = "fedora-42"\n[[customizations.user]]\nname = "u"\ngenerate_password = true\n'
    )
    proc = cli("kickstart", bp)
    assert proc.returncode == 2 and "generate_password" in proc.stderr, proc.stderr


def test_racing_builds_share_one_whole_secret(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: cache_secret(tmp_path / "c"), range(32)))
    assert len(secrets) == 1 and [p.name for p in (tmp_path / "c").iterdir()] == ["secret.key"]
