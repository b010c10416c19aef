"""The syntax every blueprint value must have before it reaches an argument list, a
configuration file, a template or a path in the image (pydantic validators raise the
ValueError; the loader names the file, line and key).

- Control characters (Unicode category Cc: C0, DEL, C1) and line or paragraph separators
  are refused everywhere a value ends up in a line-based file (dnf.conf, timesyncd.conf,
  authorized_keys, locale files, hosts, fstab, GPT names, the kernel command line,
  kickstart): a newline there starts a new setting.
- A value that stands alone in an argument list never starts with '-', so a tool cannot
  read it as an option; option values are passed joined (``--opt=value``) or after an
  option that takes an argument, and positional values after ``--``.
- Unit names follow systemd's grammar (src/basic/unit-name.c, unit_name_is_valid):
  letters, digits and ``:-_.\\``, at most one ``@`` (not first), a known unit type suffix,
  shorter than UNIT_NAME_MAX (256). osbuild blueprints may name a service without its
  suffix ("sshd"): such a name is kept as it is and must be valid with ``.service``
  appended, which is what systemctl itself makes of it (unit_name_mangle). A leading '-'
  is refused although systemd has ``-.mount`` and ``-.slice`` (the root mount and slice,
  nothing a blueprint enables or masks): it would read as an option.
"""

from __future__ import annotations

import string
import unicodedata

UNIT_TYPES = (
    "service", "socket", "target", "device", "mount", "automount", "swap", "timer", "path",
    "slice", "scope",
)  # fmt: skip
UNIT_NAME_MAX = 256
_UNIT_CHARS = frozenset(string.ascii_letters + string.digits + ":-_.\\")


def control_char(value: str) -> str | None:
    """The first control character or line separator in ``value``, escaped; None if none."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return ch.encode("unicode_escape").decode()
    return None


def no_control(value: str) -> str:
    """``value`` unless it holds a control character (ValueError naming it)."""
    bad = control_char(value)
    if bad is not None:
        raise ValueError(f"{value[:60]!r} holds the control character {bad}; not allowed here")
    return value


def not_option(value: str, what: str) -> str:
    """``value`` unless it is empty or starts with '-' (it would be read as an option)."""
    if not value or value.startswith("-"):
        raise ValueError(f"{value!r}: a {what} cannot be empty or start with '-' (an option)")
    return value


def unit_name_problem(name: str) -> str | None:
    """Why ``name`` is not a unit name a blueprint may enable, disable or mask; None if it is."""
    if name.startswith("-"):
        return "it starts with '-' and would be read as an option"
    full = name if name.rpartition(".")[2] in UNIT_TYPES and "." in name else name + ".service"
    if len(full) >= UNIT_NAME_MAX:
        return f"a unit name is shorter than {UNIT_NAME_MAX} characters"
    prefix = full.rpartition(".")[0]
    if not prefix:
        return "it has no name before the unit type"
    if prefix.startswith("@"):
        return "'@' cannot come first"
    bad = sorted({c for c in prefix if c not in _UNIT_CHARS and c != "@"})
    if bad:
        shown = "".join(c.encode("unicode_escape").decode() for c in bad)
        return f"it holds {shown!r}; unit names are letters, digits, ':-_.\\' and one '@'"
    return None


def unit_name(name: str) -> str:
    problem = unit_name_problem(name)
    if problem is not None:
        raise ValueError(
            f"{name[:60]!r} is not a systemd unit name ({problem}); "
            "e.g. 'sshd', 'ssh.service', 'getty@ttyS0.service', 'fstrim.timer'"
        )
    return name
