"""Users, groups and SSH keys as kickstart commands, with osbuild's semantics for what already
exists (stages/org.osbuild.users: an existing user is changed with usermod; groups are added
with groupadd --force, images pkg/osbuild/groups_stage.go): ``root`` becomes ``rootpw`` (and
``usermod`` in %post for the rest), another user the Fedora base system has is changed in
%post, a group it has is kept. Group names are mapped as for images (composer/target/accounts.py)."""

from __future__ import annotations

import datetime
import re
from typing import Any

from composer.blueprint.customizations import User, is_crypt_hash
from composer.blueprint.model import Blueprint
from composer.kickstart.post import sh
from composer.kickstart.quote import KickstartError, checked, word
from composer.plan.judgement import group_rule
from composer.target.distros import Distro
from composer.target.facts import facts_for

_LIST_ITEM = re.compile(r"^[A-Za-z0-9:_.@-]+$")


def names_csv(key: str, items: list[str]) -> str:
    for i, item in enumerate(items):
        if not _LIST_ITEM.match(item):
            raise KickstartError(
                f"{key}[{i}]: {item!r} is not a plain name (letters, digits, :_.@-)"
            )
    return ",".join(items)


def _groups_of(bp: Blueprint, distro: Distro, u: User, key: str) -> tuple[str, list[str]]:
    """(the user's groups as Fedora names them, groups of the other family to create)."""
    have = set(facts_for(distro).groups) | {g.name for g in bp.customizations.group}
    rule = group_rule(distro)
    names, create = [], []
    for name in u.groups:
        action, target = rule.resolve(name, have)
        names.append(target)
        if action == "create":
            create.append(target)
    return names_csv(f"{key}.groups", list(dict.fromkeys(names))), create


def rootpw(bp: Blueprint) -> dict[str, Any]:
    """`rootpw`: the root user's password, else locked (anaconda's default)."""
    root = next((u for u in bp.customizations.user if u.name == "root"), None)
    i = bp.customizations.user.index(root) if root is not None else 0
    if root is None or root.password is None:
        return {"lock": True}
    pw = checked(f"customizations.user[{i}].password", root.password)
    return {"lock": False, "password": pw, "crypted": is_crypt_hash(pw)}


def users(bp: Blueprint, distro: Distro) -> tuple[list[dict[str, Any]], list[str]]:
    """(`user` commands for new users, other family's groups they need created)."""
    existing = facts_for(distro).users
    out, create = [], []
    for i, u in enumerate(bp.customizations.user):
        if u.name in existing:
            continue
        key = f"customizations.user[{i}]"
        groups, more = _groups_of(bp, distro, u, key)
        create += more
        pw = u.password
        out.append({
            "name": word(f"{key}.name", u.name),
            "gecos": checked(f"{key}.description", u.description) or None,
            "password": checked(f"{key}.password", pw) if pw is not None else None,
            "crypted": pw is not None and is_crypt_hash(pw),
            "groups": groups or None,
            "home": checked(f"{key}.home", u.home) if u.home else None,
            "shell": checked(f"{key}.shell", u.shell) if u.shell else None,
            "uid": u.uid,
            "gid": u.gid,
        })  # fmt: skip
    return out, list(dict.fromkeys(create))


def groups(bp: Blueprint, distro: Distro, create: list[str]) -> list[dict[str, Any]]:
    """`group` commands: the blueprint's (those Fedora has are kept, as osbuild's groupadd
    --force), then the other family's groups users need."""
    have = facts_for(distro).groups
    out = [{"name": word(f"customizations.group[{i}].name", g.name), "gid": g.gid}
           for i, g in enumerate(bp.customizations.group) if g.name not in have]  # fmt: skip
    declared = {g.name for g in bp.customizations.group}
    return out + [{"name": g, "gid": None} for g in create if g not in declared]


def post(bp: Blueprint, distro: Distro) -> list[str]:
    """%post for what `user`/`rootpw` cannot say: changes to existing users (usermod, as
    osbuild), account expiry (chage -E) and forced password change (chage -d 0)."""
    existing = facts_for(distro).users
    out = []
    for i, u in enumerate(bp.customizations.user):
        key = f"customizations.user[{i}]"
        name = sh(f"{key}.name", u.name)
        if u.name in existing:
            out += _usermod(bp, distro, u, key, name)
        if u.expiredate is not None:
            day = datetime.date(1970, 1, 1) + datetime.timedelta(days=u.expiredate)
            out.append(f"chage -E {day.isoformat()} {name}")
        if u.force_password_reset:
            out.append(f"chage -d 0 {name}")
    return out


def _usermod(bp: Blueprint, distro: Distro, u: User, key: str, name: str) -> list[str]:
    args = []
    if u.groups:
        groups, create = _groups_of(bp, distro, u, key)
        args += ["--groups", sh(f"{key}.groups", groups)]
        pre = [f"groupadd --force --system {sh(f'{key}.groups', g)}" for g in create]
    else:
        pre = []
    for option, value, field in (("--comment", u.description, "description"),
                                 ("--home", u.home, "home"), ("--shell", u.shell, "shell"),
                                 ("--gid", u.gid, "gid")):  # fmt: skip
        if value not in (None, ""):
            args += [option, sh(f"{key}.{field}", value)]
    lines = [*pre, f"usermod {' '.join(args)} {name}"] if args else pre
    if u.name != "root" and u.password is not None:  # root's is rootpw's
        pw = sh(f"{key}.password", f"{u.name}:{u.password}")
        lines.append(f"printf '%s\\n' {pw} | chpasswd{' -e' if is_crypt_hash(u.password) else ''}")
    return lines


def sshkeys(bp: Blueprint) -> list[dict[str, str]]:
    c = bp.customizations
    keys = [{"user": word(f"customizations.user[{i}].name", u.name),
             "key": word(f"customizations.user[{i}].key", u.key)}
            for i, u in enumerate(c.user) if u.key]  # fmt: skip
    keys += [{"user": word(f"customizations.sshkey[{i}].user", k.user),
              "key": word(f"customizations.sshkey[{i}].key", k.key)}
             for i, k in enumerate(c.sshkey)]  # fmt: skip
    return keys
