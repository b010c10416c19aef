"""composer.spec.dps: DPS type table, look-ups, mount points, attribute flags, /var UUID rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from composer.core.errors import ComposerError
from composer.spec import dps, dps_table
from composer.spec.arch import ARCHES
from composer.spec.dps import GptFlag, UnknownGptFlag, UnknownPartitionType

# The specification's own table, kept beside the tests (its header names the upstream commit)
SPEC_TABLE = Path(__file__).resolve().parents[2] / "data/dps-partition-types.md"

ARCH_TOKENS = [
    "x86-64", "arm64", "x86", "arm", "riscv64", "ppc64-le", "s390x", "loongarch64", "alpha",
    "arc", "ia64", "mips", "mips64", "mips-le", "mips64-le", "parisc", "ppc", "ppc64",
    "riscv32", "s390", "tilegx",
]  # fmt: skip

# Root partition type per architecture, as the specification's table has them.
ROOT_UUIDS = [
    ("x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("x86", "44479540-f297-41b2-9af7-d131d5f0458a"),
    ("arm", "69dad710-2ce4-4e3c-b16c-21a1d49abed3"),
    ("riscv64", "72ec70a6-cf74-40e6-bd49-4bda08e8f224"),
    ("ppc64-le", "c31c45e6-3f39-412e-80fb-4809c4980599"),
    ("s390x", "5eead9a9-fe09-4a1e-a1d7-520d00531306"),
    ("loongarch64", "77055800-792c-4f94-b39a-98c91b762bb6"),
    ("alpha", "6523f8ae-3eb1-4e2a-a05a-18b695ae656f"),
    ("arc", "d27f46ed-2919-4cb8-bd25-9531f3c16534"),
    ("ia64", "993d8d3d-f80e-4225-855a-9daf8ed7ea97"),
    ("mips", "e9434544-6e2c-47cc-bae2-12d6deafb44c"),
    ("mips64", "d113af76-80ef-41b4-bdb6-0cff4d3d4a25"),
    ("mips-le", "37c58c8a-d913-4156-a25f-48b1b64e07f0"),
    ("mips64-le", "700bda43-7a34-4507-b179-eeb93d7a7ca3"),
    ("parisc", "1aacdb3b-5444-4138-bd9e-e5c2239b2346"),
    ("ppc", "1de3f1ef-fa98-47b5-8dcd-4a860a654d78"),
    ("ppc64", "912ade1d-a839-4913-8964-a10eee08fbd2"),
    ("riscv32", "60d5a7fe-8e7d-435c-b714-3dd8162144e1"),
    ("s390", "08a7acea-624c-4a20-91e8-6e0fa67d23f9"),
    ("tilegx", "c50cdd70-3862-4cc3-90e1-809a8c93ee2c"),
]

GENERIC_UUIDS = {
    "esp": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "xbootldr": "bc13c2ff-59e6-4262-a352-b275fd6f7172",
    "swap": "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
    "home": "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
    "srv": "3b8f8425-20e0-4f3b-907f-1a25a76f98e8",
    "var": "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
    "tmp": "7ec6f557-3bc5-4aca-b293-16ef5df639d1",
    "user-home": "773f91ef-66d4-49b5-bd83-d683bf40ad16",
    "linux-generic": "0fc63daf-8483-4772-8e79-3d69d8477de4",
}

SUFFIX = {
    "root": "",
    "usr": "",
    "root-verity": "-verity",
    "usr-verity": "-verity",
    "root-verity-sig": "-verity-sig",
    "usr-verity-sig": "-verity-sig",
}


def spec_table(text: str) -> dict[str, tuple[str, str]]:
    """Partition type description ("Root Partition (x86)", "Swap", ...) -> (UUID, systemd
    macro or "") from the specification's "Defined Partition Type UUIDs" table."""
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = (
            re.fullmatch(r"`([0-9a-f-]{36})`(?: `(SD_GPT_\w+)`)?", cells[1])
            if len(cells) > 1
            else None
        )
        if m:
            name = cells[0].strip("_").replace("`", "")
            assert name not in out, name
            out[name] = (m.group(1), m.group(2) or "")
    return out


# --- the table -------------------------------------------------------------------------------


def test_count_and_uniqueness() -> None:
    types = dps.all_types()
    assert len(types) == 135
    assert len({t.uuid for t in types}) == 135
    assert len({t.name for t in types}) == 135
    assert tuple(ARCH_TOKENS) == dps.ARCHITECTURES
    assert sum(t.arch is None for t in types) == 9


def test_every_arch_has_six_designators() -> None:
    for arch in ARCH_TOKENS:
        got = {t.designator: t.name for t in dps.all_types() if t.arch == arch}
        assert got == {
            "root": f"root-{arch}",
            "usr": f"usr-{arch}",
            "root-verity": f"root-{arch}-verity",
            "usr-verity": f"usr-{arch}-verity",
            "root-verity-sig": f"root-{arch}-verity-sig",
            "usr-verity-sig": f"usr-{arch}-verity-sig",
        }


def test_table_matches_the_specification() -> None:
    """All 135 types: every row of the specification's table is a type with that UUID (by
    the specification's own wording of its name), and there is no other type."""
    expected = spec_table(SPEC_TABLE.read_text())
    assert len(expected) == 135
    got = {t.description: str(t.uuid) for t in dps.all_types()}
    assert got == {name: u for name, (u, _) in expected.items()}


def test_table_names_are_systemds() -> None:
    """Where the specification names systemd's macro (SD_GPT_ROOT_X86_64, ...), the type's
    systemd-id128 name is that macro's spelling (root-x86-64)."""
    expected = spec_table(SPEC_TABLE.read_text())
    by_description = {t.description: t for t in dps.all_types()}
    checked = 0
    for name, (_, macro) in expected.items():
        if macro:
            assert macro.removeprefix("SD_GPT_").lower().replace("_", "-") == (
                by_description[name].name
            ), name
            checked += 1
    assert checked > 100


@pytest.mark.parametrize(("arch", "text"), ROOT_UUIDS)
def test_root_uuid_per_arch(arch: str, text: str) -> None:
    t = dps.by_designator("root", arch)
    assert t.uuid == uuid.UUID(text)
    assert (t.name, t.designator, t.arch) == (f"root-{arch}", "root", arch)
    assert t.description.startswith("Root Partition (")


def test_sample_non_root_uuids() -> None:
    assert str(dps.by_name("usr-x86-64").uuid) == "8484680c-9521-48c6-9c11-b0720656f69e"
    assert str(dps.by_name("root-arm64-verity").uuid) == "df3300ce-d69f-4c92-978c-9bfb0f38d820"
    sig = dps.by_name("usr-arm64-verity-sig")
    assert str(sig.uuid) == "c23ce4ff-44bd-4b00-b2d4-b41b3419e02a"
    assert sig.description == "/usr/ Verity Signature Partition (64-bit ARM/AArch64)"
    assert str(dps.by_name("usr-tilegx-verity").uuid) == "2fb4bf56-07fa-42da-8132-6b139f2026ae"


@pytest.mark.parametrize(("name", "text"), sorted(GENERIC_UUIDS.items()))
def test_generic_types(name: str, text: str) -> None:
    t = dps.by_name(name)
    assert t.uuid == uuid.UUID(text)
    assert (t.name, t.designator, t.arch) == (name, name, None)
    assert dps.by_designator(name) is t
    assert dps.by_designator(name, "aarch64") is t  # arch is ignored for generic types
    assert dps.by_uuid(text) is t


def test_partition_type_is_frozen() -> None:
    t = dps.by_name("esp")
    with pytest.raises(AttributeError):
        t.name = "x"  # type: ignore[misc]
    assert uuid.UUID(GENERIC_UUIDS["var"]) == dps.VAR_TYPE_UUID


# --- look-ups --------------------------------------------------------------------------------


def test_every_type_round_trips() -> None:
    for t in dps.all_types():
        assert dps.by_name(t.name) is t
        assert dps.by_name(t.name.upper()) is t
        assert dps.by_uuid(t.uuid) is t
        assert dps.by_uuid(str(t.uuid).upper()) is t
        assert dps.by_uuid(t.uuid.hex) is t
        assert dps.by_designator(t.designator, t.arch) is t


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("root-x86_64", "root-x86-64"),
        ("root-amd64", "root-x86-64"),
        ("ROOT-AMD64", "root-x86-64"),
        ("root-aarch64", "root-arm64"),
        ("usr-x86_64", "usr-x86-64"),
        ("usr-amd64-verity", "usr-x86-64-verity"),
        ("usr-aarch64-verity-sig", "usr-arm64-verity-sig"),
        ("root-aarch64-verity", "root-arm64-verity"),
        ("root-i686", "root-x86"),
        ("root-armv7l", "root-arm"),
        ("root-ppc64le", "root-ppc64-le"),
        ("usr-loong64", "usr-loongarch64"),
        ("root-mipsel", "root-mips-le"),
        ("root-hppa-verity", "root-parisc-verity"),
        ("  Root-X86-64  ", "root-x86-64"),
    ],
)
def test_name_aliases(alias: str, canonical: str) -> None:
    t = dps.by_name(alias)
    assert t.name == canonical


def test_bare_names_resolve_to_given_or_native_arch() -> None:
    assert dps.by_name("root", arch="aarch64").name == "root-arm64"
    assert dps.by_name("usr-verity-sig", arch="amd64").name == "usr-x86-64-verity-sig"
    native = dps.native_arch()
    assert dps.by_name("root").arch == native
    assert dps.by_designator("root-verity").name == f"root-{native}-verity"


@pytest.mark.parametrize(
    ("arch", "token"),
    [
        ("x86-64", "x86-64"),
        ("x86_64", "x86-64"),
        ("amd64", "x86-64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("armhf", "arm"),
        ("armv7hl", "arm"),
        ("i386", "x86"),
        ("ppc64el", "ppc64-le"),
        ("powerpc", "ppc"),
        ("mips64el", "mips64-le"),
        ("loong64", "loongarch64"),
        ("hppa", "parisc"),
        ("S390X", "s390x"),
    ],
)
def test_by_designator_arch_spellings(arch: str, token: str) -> None:
    assert dps.resolve_arch(arch) == token
    assert dps.by_designator("usr", arch) is dps.by_name(f"usr-{token}")


def test_composer_arch_table_agrees() -> None:
    for a in ARCHES.values():
        assert dps.resolve_arch(a.name) == a.dps
        assert dps.resolve_arch(a.debian) == a.dps
        assert dps.resolve_arch(a.dps) == a.dps


def test_by_uuid_unknown_and_malformed() -> None:
    assert dps.by_uuid("00000000-0000-0000-0000-000000000000") is None
    assert dps.by_uuid(uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7")) is None  # MS basic data
    assert dps.by_uuid("{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}") is dps.by_name("esp")
    with pytest.raises(ValueError):
        dps.by_uuid("not-a-uuid")


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownPartitionType) as err:
        dps.by_name("root-x86-46")
    assert isinstance(err.value, KeyError)
    assert isinstance(err.value, ComposerError)
    assert "root-x86-64" in err.value.suggestions
    assert "root-x86-64" in str(err.value)
    assert str(err.value).startswith("unknown partition type name 'root-x86-46'")


def test_unknown_arch_and_designator() -> None:
    with pytest.raises(UnknownPartitionType, match="unknown architecture 'sparc64'"):
        dps.by_designator("root", "sparc64")
    with pytest.raises(UnknownPartitionType, match="did you mean: aarch64"):
        dps.by_designator("root", "aarch46")
    with pytest.raises(UnknownPartitionType, match="did you mean: root"):
        dps.by_designator("rot", "x86_64")
    with pytest.raises(KeyError):
        dps.by_name("verity")
    with pytest.raises(UnknownPartitionType):
        dps.native_arch("vax")


@pytest.mark.parametrize(
    ("machine", "token"),
    [
        ("x86_64", "x86-64"),
        ("aarch64", "arm64"),
        ("arm64", "arm64"),
        ("i686", "x86"),
        ("armv7l", "arm"),
        ("armv8l", "arm"),
        ("riscv64", "riscv64"),
        ("ppc64le", "ppc64-le"),
        ("ppc64", "ppc64"),
        ("s390x", "s390x"),
        ("loongarch64", "loongarch64"),
        ("parisc64", "parisc"),
        ("mips64", "mips64"),
    ],
)
def test_native_arch_mapping(machine: str, token: str) -> None:
    assert dps.native_arch(machine) == token


def test_native_arch_of_this_host() -> None:
    assert dps.native_arch() in dps.ARCHITECTURES


# --- mount points ----------------------------------------------------------------------------


MOUNTS = {
    "/": "root",
    "/usr": "usr",
    "/home": "home",
    "/srv": "srv",
    "/var": "var",
    "/var/tmp": "tmp",
    "swap": "swap",
    "/boot": "xbootldr",
    "/efi": "esp",
    "/boot/efi": "esp",
}


@pytest.mark.parametrize(("mountpoint", "designator"), sorted(MOUNTS.items()))
def test_designator_for_mountpoint(mountpoint: str, designator: str) -> None:
    assert dps.designator_for_mountpoint(mountpoint) == designator


@pytest.mark.parametrize("mountpoint", ["/tmp", "/opt", "/var/log", "/usr/local", "", "home"])
def test_mountpoints_without_designator(mountpoint: str) -> None:
    assert dps.designator_for_mountpoint(mountpoint) is None


def test_mountpoint_normalisation() -> None:
    assert dps.designator_for_mountpoint("/usr/") == "usr"
    assert dps.designator_for_mountpoint("//var//tmp/") == "tmp"
    assert dps.designator_for_mountpoint("/boot/efi/") == "esp"
    assert dps.designator_for_mountpoint("SWAP") == "swap"


def test_mountpoint_for_designator() -> None:
    for mountpoint, designator in MOUNTS.items():
        if mountpoint != "/boot/efi":
            assert dps.mountpoint_for_designator(designator) == mountpoint
    assert dps.mountpoint_for_designator("esp") == "/efi"
    for d in ("root-verity", "usr-verity-sig", "user-home", "linux-generic"):
        assert dps.mountpoint_for_designator(d) is None
    with pytest.raises(UnknownPartitionType):
        dps.mountpoint_for_designator("opt")
    for d in dps_table.DESIGNATORS:
        mp = dps.mountpoint_for_designator(d)
        if mp is not None:
            assert dps.designator_for_mountpoint(mp) == d


# --- attribute flags -------------------------------------------------------------------------


def test_flag_bits() -> None:
    bits = {f.name: int(f) for f in GptFlag}
    assert bits == {
        "REQUIRED_PARTITION": 1 << 0,
        "NO_BLOCK_IO_PROTOCOL": 1 << 1,
        "LEGACY_BIOS_BOOTABLE": 1 << 2,
        "GROWFS": 0x0800000000000000,
        "READ_ONLY": 0x1000000000000000,
        "NO_AUTO": 0x8000000000000000,
    }
    assert int(GptFlag.NO_AUTO) == 1 << 63
    assert int(GptFlag.READ_ONLY) == 1 << 60
    assert int(GptFlag.GROWFS) == 1 << 59


def test_flags_from_names() -> None:
    value = dps.flags_from_names(["no-auto", "read-only", "grow-fs"])
    assert value == (1 << 63) | (1 << 60) | (1 << 59)
    assert isinstance(value, GptFlag)
    assert dps.flags_from_names([]) == 0
    assert dps.flags_from_names("no-auto, read-only") == GptFlag.NO_AUTO | GptFlag.READ_ONLY
    assert dps.flags_from_names(["NO_AUTO", "grow-file-system", "growfs"]) == (
        GptFlag.NO_AUTO | GptFlag.GROWFS
    )
    assert dps.flags_from_names(["required-partition", "bit-48"]) == 1 | 1 << 48


@pytest.mark.parametrize("bad", ["no-atuo", "readonl", "bit-64", "bit-x", "sticky"])
def test_flags_from_names_unknown(bad: str) -> None:
    with pytest.raises(UnknownGptFlag, match=f"unknown GPT attribute flag '{bad}'") as err:
        dps.flags_from_names(["read-only", bad])
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, ComposerError)


def test_flag_names() -> None:
    assert dps.flag_names(0) == []
    assert dps.flag_names(GptFlag.NO_AUTO | GptFlag.READ_ONLY) == ["read-only", "no-auto"]
    assert dps.flag_names(1 | 1 << 5) == ["required-partition", "bit-5"]
    with pytest.raises(ValueError):
        dps.flag_names(1 << 64)
    with pytest.raises(ValueError):
        dps.flag_names(-1)


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_flag_names_round_trip(value: int) -> None:
    assert dps.flags_from_names(dps.flag_names(value)) == value


def test_flag_applicability_table() -> None:
    applies = dps.FLAG_APPLIES_TO
    arch = set(dps_table.ARCH_DESIGNATORS)
    data = {"root", "usr", "home", "srv", "var", "tmp", "xbootldr"}
    assert applies[GptFlag.NO_AUTO] == arch | data | {"swap"}
    assert applies[GptFlag.READ_ONLY] == arch | data
    assert applies[GptFlag.GROWFS] == data
    for flag in applies.values():
        assert not flag & {"esp", "user-home", "linux-generic"}


def test_check_flags() -> None:
    assert dps.check_flags("root", GptFlag.NO_AUTO | GptFlag.GROWFS) == []
    assert dps.check_flags("root-verity", GptFlag.READ_ONLY) == []
    assert dps.check_flags("swap", GptFlag.NO_AUTO) == []
    assert dps.check_flags("esp", GptFlag.REQUIRED_PARTITION | GptFlag.NO_BLOCK_IO_PROTOCOL) == []
    problems = dps.check_flags("esp", GptFlag.NO_AUTO)
    assert len(problems) == 1 and "no-auto" in problems[0] and "esp" in problems[0]
    assert any("grow-fs" in p for p in dps.check_flags("swap", GptFlag.GROWFS))
    assert any("grow-fs" in p for p in dps.check_flags("usr-verity", GptFlag.GROWFS))
    assert any("read-only" in p for p in dps.check_flags("swap", GptFlag.READ_ONLY))
    both = dps.check_flags("var", GptFlag.GROWFS | GptFlag.READ_ONLY)
    assert both == ["grow-fs has no effect on a partition that is also read-only"]
    assert any("reserved by UEFI" in p for p in dps.check_flags("home", 1 << 7))
    assert any("not defined by DPS" in p for p in dps.check_flags("home", 1 << 50))
    with pytest.raises(UnknownPartitionType):
        dps.check_flags("bogus", 0)


# --- /var partition UUID ---------------------------------------------------------------------

# `systemd-id128 machine-id --app-specific=4d21b016b53445c2a9fb5c16e091fd2d -u` (systemd 252)
# on a machine with this /etc/machine-id gave:
SPEC_MACHINE_ID = "3d1219c7c4c5404aaa1f6d2a48adfda4"
SPEC_VAR_UUID = "24e43059-9734-49cd-a32e-bcae30d648ed"


def test_var_uuid_vector() -> None:
    assert str(dps.var_partition_uuid(SPEC_MACHINE_ID)) == SPEC_VAR_UUID
    assert str(dps.var_partition_uuid(uuid.UUID(SPEC_MACHINE_ID))) == SPEC_VAR_UUID
    assert str(dps.var_partition_uuid(SPEC_MACHINE_ID.upper() + "\n")) == SPEC_VAR_UUID


@given(st.uuids())
def test_var_uuid_is_v4_and_deterministic(machine_id: uuid.UUID) -> None:
    if machine_id.int == 0:
        return
    u = dps.var_partition_uuid(machine_id)
    assert u.version == 4
    assert u.variant == uuid.RFC_4122
    assert u == dps.var_partition_uuid(machine_id.hex)
    assert u == dps.app_specific_uuid(machine_id, dps.VAR_TYPE_UUID)


def test_var_uuid_rejects_bad_machine_ids() -> None:
    with pytest.raises(ValueError, match="not a 128-bit ID"):
        dps.var_partition_uuid("xyz")
    with pytest.raises(ValueError, match="all zeros"):
        dps.var_partition_uuid("0" * 32)


@pytest.mark.skipif(
    shutil.which("systemd-id128") is None or not Path("/etc/machine-id").is_file(),
    reason="needs systemd-id128 and /etc/machine-id",
)
def test_var_uuid_matches_systemd_id128() -> None:
    machine_id = Path("/etc/machine-id").read_text().strip()
    if not re.fullmatch(r"[0-9a-f]{32}", machine_id):
        pytest.skip("/etc/machine-id is not initialised")
    out = subprocess.run(
        ["systemd-id128", "machine-id", "--app-specific=" + dps.VAR_TYPE_UUID.hex],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert dps.var_partition_uuid(machine_id) == uuid.UUID(out)


@pytest.mark.skipif(shutil.which("systemd-id128") is None, reason="needs systemd-id128")
def test_table_matches_systemd_id128_show() -> None:
    out = subprocess.run(
        ["systemd-id128", "show"], capture_output=True, text=True, check=True
    ).stdout
    shown = dict(line.split() for line in out.splitlines()[1:] if line.strip())
    checked = 0
    for name, hex_id in shown.items():
        if "secondary" in name:
            continue
        assert dps.by_name(name).uuid == uuid.UUID(hex_id), name
        checked += 1
    assert checked > 0  # systemd 252 shows all 135 plus the native/secondary aliases
