"""One manifest per image: found by name, matched by sha256, its varstore a plain file beside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from composer.judge.run import has_manifest
from composer.manifest import load as load_module
from composer.manifest.load import (
    OUTPUT_LOCK,
    ManifestError,
    find_manifest,
    image_stem,
    load,
)

from .. import manifests

DISK = b"a disk image"


def _manifest(out: Path, name: str, image: str, sha: str | None = None, **extra: Any) -> Path:
    entry = {**manifests.output(image, DISK), **({"sha256": sha} if sha else {})}
    return manifests.write(
        out / f"{name}.manifest.json",
        name=name,
        outputs=[entry],
        validate={"timeout": 77},
        **extra,
    )


def _varstore(name: str) -> dict[str, Any]:
    return {
        "file": name,
        "sha256": "0" * 64,
        "firmware_code": "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "firmware_descriptor": "/usr/share/qemu/firmware/40-edk2-x86_64.json",
        "template": "/usr/share/OVMF/OVMF_VARS_4M.fd",
        "secure_boot": False,
        "enrolled": {},
        "boot_entries": {},
        "boot_order": [],
    }


@pytest.mark.parametrize(
    ("file", "stem"),
    [
        ("img.qcow2", "img"),
        ("img.raw", "img"),
        ("img.raw.zst", "img"),
        ("my.image.v2.vhdx", "my.image.v2"),
        ("img.iso", None),
        (".qcow2", None),
    ],
)
def test_image_stem(file: str, stem: str | None) -> None:
    assert image_stem(file) == stem


def test_an_image_is_matched_to_its_own_manifest(tmp_path: Path) -> None:
    image = tmp_path / "a.qcow2"
    image.write_bytes(DISK)
    _manifest(tmp_path, "a", "a.qcow2")
    _manifest(tmp_path, "b", "b.qcow2", sha="0" * 64)  # another image's, in the same directory
    found = load(image)
    assert found is not None and found.path == tmp_path / "a.manifest.json"
    assert found.timeout == 77.0
    assert "matches" in found.note
    assert has_manifest(image)


def test_a_build_that_began_publishing_during_an_unlocked_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No build had published into the directory (no lock to hold) when the read began; one
    did while it ran, so the read saw one build's manifest beside another's image. The read
    is done again, holding the lock the build made, and finds its pair."""
    image = tmp_path / "a.qcow2"
    image.write_bytes(DISK)
    _manifest(tmp_path, "a", "a.qcow2")
    real = load_module._locate
    calls: list[bool] = []

    def locate(image: Path, explicit: Path | None) -> object:
        calls.append((tmp_path / OUTPUT_LOCK).exists())
        if len(calls) == 1:
            (tmp_path / OUTPUT_LOCK).touch()  # the build, publishing meanwhile
            raise ManifestError("one build's manifest beside another's image")
        return real(image, explicit)

    monkeypatch.setattr(load_module, "_locate", locate)
    found = load(image)
    assert found is not None and "matches" in found.note
    assert calls == [False, True]


def test_a_mismatch_read_under_the_lock_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / OUTPUT_LOCK).touch()
    calls: list[Path] = []

    def locate(image: Path, explicit: Path | None) -> object:
        calls.append(image)
        raise ManifestError("changed")

    monkeypatch.setattr(load_module, "_locate", locate)
    with pytest.raises(ManifestError):
        load(tmp_path / "a.qcow2")
    assert len(calls) == 1


def test_an_image_without_its_manifest_is_foreign(tmp_path: Path) -> None:
    image = tmp_path / "other.qcow2"
    image.write_bytes(DISK)
    _manifest(tmp_path, "a", "a.qcow2")
    (tmp_path / "manifest.json").write_text("{}")  # the old shared name means nothing now
    assert find_manifest(image) is None and load(image) is None
    assert not has_manifest(image)


def test_a_changed_image_is_refused_with_both_hashes(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(b"changed after the build")
    _manifest(tmp_path, "a", "a.raw")
    with pytest.raises(ManifestError) as err:
        load(image)
    text = str(err.value)
    assert hashlib.sha256(b"changed after the build").hexdigest() in text
    assert hashlib.sha256(DISK).hexdigest() in text
    assert "--manifest" in text and err.value.exit_code == 2


def test_a_manifest_that_does_not_list_the_image_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "a.qcow2"
    image.write_bytes(DISK)
    _manifest(tmp_path, "a", "a.raw")
    with pytest.raises(ManifestError, match="lists no output named a.qcow2"):
        load(image)


def test_an_explicit_manifest_judges_a_changed_copy_and_says_so(tmp_path: Path) -> None:
    built = tmp_path / "built"
    built.mkdir()
    manifest = _manifest(built, "a", "a.raw")
    copy = tmp_path / "altered.raw"
    copy.write_bytes(b"deliberately changed")
    found = load(copy, manifest)
    assert found is not None and found.path == manifest
    assert "differs" in found.note


@pytest.mark.parametrize("name", ["../x.fd", "/etc/passwd", "sub/x.fd", "..", ""])
def test_the_varstore_must_be_a_plain_name(tmp_path: Path, name: str) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(DISK)
    _manifest(tmp_path, "a", "a.raw", varstore=_varstore(name))
    found = load(image)
    assert found is not None
    with pytest.raises(ManifestError, match="varstore.file must be a plain file name"):
        found.varstore()


def test_the_varstore_must_be_a_regular_file(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(DISK)
    (tmp_path / "secret").write_text("not a varstore")
    (tmp_path / "a.vars.fd").symlink_to(tmp_path / "secret")
    _manifest(tmp_path, "a", "a.raw", varstore=_varstore("a.vars.fd"))
    found = load(image)
    assert found is not None
    with pytest.raises(ManifestError, match="is not a regular file"):
        found.varstore()
    (tmp_path / "a.vars.fd").unlink()
    with pytest.raises(ManifestError, match="does not exist"):
        found.varstore()
    (tmp_path / "a.vars.fd").write_bytes(b"vars")
    assert found.varstore() == tmp_path / "a.vars.fd"


def test_an_unreadable_manifest_is_an_input_error(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(DISK)
    (tmp_path / "a.manifest.json").write_text("[1, 2")
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load(image)


def test_a_manifest_of_another_version_is_refused_naming_the_file(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(DISK)
    path = _manifest(tmp_path, "a", "a.raw")
    data = json.loads(path.read_text())
    for version in (2, None, "1"):
        data["manifest_version"] = version
        path.write_text(json.dumps(data))
        with pytest.raises(ManifestError, match=f"{path}: manifest_version {version!r}") as err:
            load(image)
        assert err.value.exit_code == 2


def test_a_manifest_that_is_not_the_models_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "a.raw"
    image.write_bytes(DISK)
    path = _manifest(tmp_path, "a", "a.raw")
    data = json.loads(path.read_text())
    data["expect"]["tpm"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"not a valid manifest: expect\.tpm"):
        load(image)
