"""osbuild ``[customizations.firewall]`` and ``[customizations.sshd]`` (typed, frozen).

Shapes from osbuild/blueprint pkg/blueprint/customizations.go (FirewallCustomization) and
pkg/blueprint/sshd_customizations.go (SshdCustomization). Which targets honour them is said by
composer/plan/keytable.py.
"""

from __future__ import annotations

import re

from pydantic import field_validator

from composer.core.model import Model

# firewalld's port syntax: PORT[-PORT]:PROTOCOL, or a service name for the port (osbuild's
# examples use "imap:tcp")
_PORT = re.compile(r"^(\d{1,5}(-\d{1,5})?|[a-z][a-z0-9_-]{0,62}):(tcp|udp|sctp|dccp)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PERMIT_ROOT_LOGIN = ("yes", "no", "prohibit-password", "without-password", "forced-commands-only")


def _names(v: tuple[str, ...], what: str) -> tuple[str, ...]:
    for name in v:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a {what} name (letters, digits, '_.-')")
    return v


class FirewallServices(Model):
    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()

    @field_validator("enabled", "disabled")
    @classmethod
    def _services(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _names(v, "firewalld service")


class FirewallZone(Model):
    name: str | None = None
    sources: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else _names((v,), "firewalld zone")[0]

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for src in v:
            if not re.fullmatch(r"[0-9A-Fa-f:.]+(/\d{1,3})?|ipset:[A-Za-z0-9_.-]+", src):
                raise ValueError(f"{src!r}: a zone source is an address, a network or ipset:NAME")
        return v


class Firewall(Model):
    ports: tuple[str, ...] = ()
    services: FirewallServices = FirewallServices()
    zones: tuple[FirewallZone, ...] = ()

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for port in v:
            m = _PORT.match(port)
            numbers = re.findall(r"\d+", port.split(":")[0]) if m else []
            if m is None or any(not 0 < int(n) < 65536 for n in numbers):
                raise ValueError(
                    f"{port!r}: a port is PORT:PROTOCOL, PORT-PORT:PROTOCOL or SERVICE:PROTOCOL "
                    "(tcp, udp, sctp, dccp), such as '22:tcp' or '60000-60010:udp'"
                )
        return v


class Sshd(Model):
    password_authentication: bool | None = None
    client_alive_interval: int | None = None
    permit_root_login: str = ""
    kbd_interactive_authentication: bool | None = None

    @field_validator("client_alive_interval")
    @classmethod
    def _interval(cls, v: int | None) -> int | None:
        if v is not None and not 0 <= v < 2**31:
            raise ValueError(f"{v}: seconds, 0 or more")
        return v

    @field_validator("permit_root_login")
    @classmethod
    def _permit(cls, v: str) -> str:
        if v and v not in _PERMIT_ROOT_LOGIN:
            raise ValueError(f"{v!r}: one of {', '.join(_PERMIT_ROOT_LOGIN)}")
        return v

    def settings(self) -> list[tuple[str, str]]:
        """(sshd_config keyword, value) for every key the blueprint sets."""
        out = []
        for keyword, value in (
            ("PasswordAuthentication", self.password_authentication),
            ("ClientAliveInterval", self.client_alive_interval),
            ("PermitRootLogin", self.permit_root_login or None),
            ("KbdInteractiveAuthentication", self.kbd_interactive_authentication),
        ):
            if value is not None:
                out.append((keyword, ("yes" if value else "no") if isinstance(value, bool)
                            else str(value)))  # fmt: skip
        return out
