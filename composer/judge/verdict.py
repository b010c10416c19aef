"""Expectations for a booted image and the pure judgement of what the guest (or serial) said."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from composer.judge.dps_mounts import dps_mount_checks
from composer.judge.sealed import sealed_checks
from composer.judge.serial import SerialEvent, last_milestone, milestone_times
from composer.manifest import load
from composer.manifest.model import Manifest
from composer.measure.pcrdiff import explain as explain_pcr
from composer.spec import dps

_ROOT_ARG = re.compile(r"(?:^|\s)root=(\S*)")
_SPAN_PART = re.compile(r"([\d.]+)(h|min|ms|us|µs|s)\b")
_PHASE = re.compile(r"((?:[\d.]+(?:h|min|ms|us|µs|s)\s*)+)\((\w+)\)")
_UNIT = {"h": 3600.0, "min": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


@dataclass(frozen=True)
class Expectations:
    root_type_uuid: str
    tpm: bool = True
    secure_boot: bool | None = None  # None: don't care
    expected_pcrs: dict[int, str] = field(default_factory=dict)
    architecture: str = "x86_64"
    # Predicted event lists per PCR (to name the event that differs) and predictions that
    # are reported but not enforced (composer/measure/predict.py).
    pcr_events: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reported_pcrs: dict[int, str] = field(default_factory=dict)
    # The manifest's partitions, judged by the dps-mounts check (composer/judge/dps_mounts.py)
    partitions: tuple[dict[str, Any], ...] = ()
    dps_mounts: bool = False
    grow_root: bool = False
    # the signed PCR policy's key (systemd's pkfp) and the volumes sealed to it: (designator,
    # type UUID, size); composer/judge/sealed.py
    pcr_policy: str | None = None
    sealed: tuple[tuple[str, str, int], ...] = ()
    recovery: str = "none"  # "console": each sealed volume's recovery key (judge/recovery.py)


def default_root_type(arch: str) -> str:
    """The DPS root partition type of an architecture (for images without a manifest)."""
    return str(dps.by_designator("root", arch).uuid)


def type_label(uuid: str) -> str:
    """ "root-x86-64 (4f68…)" for a DPS type, else the bare UUID."""
    try:
        known = dps.by_uuid(uuid)
    except ValueError:
        known = None
    return f"{known.name} ({uuid})" if known else uuid


def expectations_from_manifest(manifest: Manifest) -> Expectations:
    """What a composer-built image must show when it boots (its manifest's ``expect``)."""
    expect = manifest.expect
    pcrs = {int(k): v.lower() for k, v in expect.pcrs.items()}
    measured = manifest.measured_boot.pcrs
    events = {int(k): [e.model_dump() for e in v.events or []] for k, v in measured.items()}
    reported = {
        int(k): v.value.lower()
        for k, v in measured.items()
        if v.value is not None and not v.enforced and int(k) not in pcrs
    }
    return Expectations(
        root_type_uuid=(expect.root_type_uuid or default_root_type(manifest.architecture)).lower(),
        tpm=expect.tpm,
        secure_boot=expect.secure_boot,
        expected_pcrs=pcrs,
        architecture=manifest.architecture,
        pcr_events=events,
        reported_pcrs=reported,
        partitions=tuple(p.model_dump() for p in manifest.disk.partitions),
        dps_mounts=expect.dps_mounts,
        grow_root=expect.grow_root,
        pcr_policy=expect.pcr_policy,
        sealed=tuple(
            (v.designator, v.type_uuid, v.size)
            for v in (manifest.pcr_policy.sealed if manifest.pcr_policy else [])
        ),
        recovery=manifest.pcr_policy.recovery if manifest.pcr_policy else "none",
    )


def load_expectations(
    image: Path, architecture: str = "x86_64", manifest: Path | None = None
) -> Expectations:
    """From ``manifest``, else the image's NAME.manifest.json beside it (whose sha256 for the
    image must match: composer/load.py), else DPS defaults for the architecture."""
    found = load.load(image, manifest)
    if found is None:
        return Expectations(default_root_type(architecture), architecture=architecture)
    return expectations_from_manifest(found.manifest)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    # set when the host, not the image, failed this check: the reason (composer/judge/blame.py;
    # "setup" when the boot could not even start)
    host_fault: str = ""


@dataclass
class Verdict:
    passed: bool
    checks: list[Check]
    timings: dict[str, float] = field(default_factory=dict)
    serial_log: Path | None = None
    accel: str | None = None
    firmware: str | None = None
    guest: dict[str, Any] | None = None  # the raw check result
    serial_tail: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # the host's fault that failed this boot ({"reason", "detail"}), when there is one
    host_fault: dict[str, str] | None = None
    # earlier attempts that the host failed and that were booted again ({"reason", ...})
    attempts: list[dict[str, Any]] = field(default_factory=list)
    interrupted: str = ""  # the signal that stopped the boot before a verdict

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    @property
    def outcome(self) -> str:
        """pass; fail (the image); error (only the host failed it: an infrastructure error,
        exit code 4); interrupted."""
        if self.interrupted:
            return "interrupted"
        if self.passed:
            return "pass"
        failing = [c for c in self.checks if not c.passed]
        return "error" if failing and all(c.host_fault for c in failing) else "fail"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["serial_log"] = str(self.serial_log) if self.serial_log else None
        d["outcome"] = self.outcome
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def parse_check_payload(text: str) -> dict[str, Any]:
    """The guest's JSON; a broken payload becomes {"parse_error": …} (judged as a failure)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return {"parse_error": str(err), "raw": text[:2000]}
    return data if isinstance(data, dict) else {"parse_error": "not an object", "raw": text[:2000]}


def failed_units(guest: dict[str, Any]) -> list[str]:
    units = []
    for line in guest.get("failed_units") or []:
        words = str(line).lstrip("●*× ").split()
        if words:
            units.append(words[0])
    return units


def failure_reasons(guest: dict[str, Any], units: list[str]) -> str:
    """ " (unit: its last journal line; ...)" from the check's failed_logs, if it sent any."""
    last: dict[str, str] = {}
    for line in guest.get("failed_logs") or []:
        unit, sep, message = str(line).partition(": ")
        if sep and message.strip():
            last[unit] = message.strip()[:160]
    reasons = [f"{u}: {last[u]}" for u in units if u in last]
    return f" ({'; '.join(reasons)})" if reasons else ""


def fstab_root_lines(guest: dict[str, Any]) -> list[str]:
    return [
        ln
        for ln in guest.get("fstab") or []
        if len(str(ln).split()) > 1 and str(ln).split()[1] == "/"
    ]


def span_seconds(text: str) -> float:
    """systemd time span ("1min 2.345s", "830ms") in seconds."""
    return sum(float(n) * _UNIT[u] for n, u in _SPAN_PART.findall(text))


def analyze_timings(guest: dict[str, Any]) -> dict[str, float]:
    """Guest-side phases from `systemd-analyze time`: guest-firmware, -loader, -kernel, …;
    firmware and loader from the boot loader's LoaderTime*USec variables when systemd-analyze
    has none (as systemd computes them: firmware = init, loader = exec - init)."""
    out: dict[str, float] = {}
    for line in guest.get("analyze") or []:
        if "Startup finished in" in str(line):
            phases = _PHASE.findall(str(line))
            out = {f"guest-{name}": round(span_seconds(span), 3) for span, name in phases}
            break
    times = guest.get("loader_times") or {}
    init, exec_ = times.get("init_usec"), times.get("exec_usec")
    if isinstance(init, int | float) and isinstance(exec_, int | float) and 0 < init <= exec_:
        out.setdefault("guest-firmware", round(init / 1e6, 3))
        out.setdefault("guest-loader", round((exec_ - init) / 1e6, 3))
    return out


def _root_checks(guest: dict[str, Any], exp: Expectations) -> list[Check]:
    root = guest.get("root") or {}
    cmd = _ROOT_ARG.findall(str(guest.get("cmdline") or ""))
    fstab = fstab_root_lines(guest)
    ptype = str(root.get("parttype") or "").lower()
    src = root.get("source")
    auto = root.get("gpt_auto_root")
    type_ok = ptype == exp.root_type_uuid.lower()
    how = f"/ is {src} ({root.get('fstype')}), type {type_label(ptype) if ptype else 'unknown'}"
    if auto:
        how += f", /dev/gpt-auto-root -> {auto}"
    if not type_ok:
        detail = f"{how}; expected {type_label(exp.root_type_uuid)}"
    elif cmd or fstab:
        detail = f"{how}; but root was configured explicitly (cmdline/fstab), not discovered"
    else:
        detail = how
    return [
        Check("root-discovered", type_ok and not cmd and not fstab, detail),
        Check(
            "no-root-on-cmdline",
            not cmd,
            f"cmdline has root={cmd[0]}" if cmd else "no root= on the kernel command line",
        ),
        Check(
            "no-fstab-root",
            not fstab,
            f"fstab mounts /: {fstab[0]}" if fstab else "fstab has no entry for /",
        ),
    ]


def _tpm_checks(guest: dict[str, Any], exp: Expectations) -> list[Check]:
    tpm = guest.get("tpm") or {}
    pcrs = {str(k): str(v).lower() for k, v in (tpm.get("pcrs") or {}).items()}
    out = []
    if exp.tpm:
        ok = bool(tpm.get("tpm0")) and bool(tpm.get("tpmrm0"))
        have = [d for d in ("tpm0", "tpmrm0") if tpm.get(d)]
        out.append(Check("tpm", ok, f"present: {', '.join(have) or 'none'}; {len(pcrs)} PCRs read"))
    for n, want in sorted(exp.expected_pcrs.items()):
        got = pcrs.get(str(n))
        detail = f"PCR {n} = {got or 'unreadable'}" + ("" if got == want else f", expected {want}")
        if got and got != want and n in exp.pcr_events:
            detail += f"; {explain_pcr(n, guest, exp.pcr_events[n])}"
        out.append(Check(f"pcr-{n}", got == want.lower(), detail))
    return out


def reported_pcr_notes(guest: dict[str, Any], exp: Expectations) -> list[str]:
    """Predictions that are not enforced: said in the notes, never failing the verdict."""
    pcrs = {str(k): str(v).lower() for k, v in ((guest.get("tpm") or {}).get("pcrs") or {}).items()}
    notes = []
    for n, want in sorted(exp.reported_pcrs.items()):
        got = pcrs.get(str(n))
        if got == want:
            notes.append(f"PCR {n} equals its (not enforced) prediction {want}")
        else:
            why = explain_pcr(n, guest, exp.pcr_events.get(n, [])) if got else "unreadable"
            notes.append(f"PCR {n} = {got}, (not enforced) prediction {want}: {why}")
    return notes


def _guest_checks(guest: dict[str, Any], exp: Expectations) -> list[Check]:
    if "parse_error" in guest:
        return [
            Check("booted", True, "the guest check ran"),
            Check("check-result", False, f"unreadable check result: {guest['parse_error']}"),
        ]
    state = guest.get("system_state")
    checks = [Check("booted", True, f"check result received (system state: {state})")]
    checks += _root_checks(guest, exp)
    if exp.dps_mounts:
        after_root = sum(size for _, _, size in exp.sealed)  # made at first boot, after /
        checks += [
            Check(*c) for c in dps_mount_checks(guest, exp.partitions, exp.grow_root, after_root)
        ]
    failed = failed_units(guest)
    checks.append(
        Check(
            "no-failed-units",
            not failed,
            f"failed: {', '.join(failed)}{failure_reasons(guest, failed)}"
            if failed
            else "no failed units",
        )
    )
    checks += _tpm_checks(guest, exp)
    sealed = [(name, type_uuid) for name, type_uuid, _ in exp.sealed]
    checks += [
        Check(*c) for c in sealed_checks(guest, exp.pcr_policy, sealed, exp.expected_pcrs.get(11))
    ]
    if exp.secure_boot is not None:
        got = guest.get("secure_boot")
        detail = f"Secure Boot is {_onoff(got)}, expected {_onoff(exp.secure_boot)}"
        raw = (guest.get("efi") or {}).get("secure_boot_var")
        if got is not exp.secure_boot:
            detail += f" (SecureBoot variable bytes: {raw or 'unreadable'})"
        checks.append(Check("secure-boot", got is exp.secure_boot, detail))
    return checks


def _onoff(value: object) -> str:
    return (
        {True: "on", False: "off"}.get(value, "unknown") if isinstance(value, bool) else "unknown"
    )


def _serial_checks(events: Sequence[SerialEvent]) -> list[Check]:
    """No result from the guest: name what failed from the fatal signs seen on the console."""
    fatal = [e for e in events if e.kind == "fatal"]
    last = last_milestone(events)
    reached = f"last milestone: {last.name} at {last.t:.1f} s" if last else "no milestone seen"
    booted_sign = next((e for e in fatal if e.check == "booted"), None)
    first = booted_sign or (fatal[0] if fatal else None)
    detail = f"no check result; {reached}" + (f"; {first.line}" if first else "")
    checks = [Check("booted", False, detail)]
    for e in fatal:
        if e.check and e.check != "booted" and not any(c.name == e.check for c in checks):
            checks.append(Check(e.check, False, f"{e.line} (at {e.t:.1f} s)"))
    return checks


def judge(
    check_json: dict[str, Any] | None,
    serial_events: Sequence[SerialEvent],
    expectations: Expectations,
    extra: Sequence[Check] = (),
) -> Verdict:
    """Pure verdict from the guest's check result (or its absence) and the serial evidence;
    ``extra``: checks the caller made of the guest's result (composer/judge/recovery.py)."""
    if check_json is not None:
        checks = [*_guest_checks(check_json, expectations), *extra]
    else:
        checks = _serial_checks(serial_events)
    timings = milestone_times(serial_events)
    if check_json is not None:
        timings.update(analyze_timings(check_json))
    return Verdict(
        passed=all(c.passed for c in checks),
        checks=checks,
        timings=timings,
        guest=check_json,
        notes=reported_pcr_notes(check_json, expectations) if check_json else [],
    )
