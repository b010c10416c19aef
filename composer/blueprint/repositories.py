"""osbuild's ``[[customizations.repositories]]``: dnf/yum repositories for dnf targets
(fedora-*, centos-stream-*). Debian targets use their archive and refuse them
(composer/plan/keytable.py). Keys as osbuild/blueprint pkg/blueprint/repository_customizations.go
(``sslverify``; the composer's earlier spelling ``ssl_verify`` is still read).

Every value ends up on a line of a dnf.conf, so none may hold a control character (a
newline would add settings, even whole repositories). URLs (``baseurls``, ``mirrorlist``,
``metalink``, ``gpgkeys``) are parsed with urllib.parse and must be ``https://``,
``http://`` or ``ftp://`` with a host, or ``file://`` with an absolute path (a repository
on this host; dnf reads its metadata and packages, nothing else); dnf's ``$releasever``
and ``$basearch`` may appear in them. Packages are signed: ``gpgcheck`` is on unless a
repository says ``gpgcheck = false``, and a checked repository must name its keys:
URLs, or (as osbuild allows) the armored key text itself, which the dnf backend writes to
a file its dnf.conf names.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence

from pydantic import AliasChoices, Field, field_validator, model_validator

from composer.blueprint.values import no_control
from composer.core.model import Model

_ID = re.compile(r"^[A-Za-z0-9_.:][A-Za-z0-9_.:-]{0,99}$")
_FILENAME = re.compile(
    r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}\.repo$"
)  # as osbuild's repoFilenameRegex, no leading -
SCHEMES = ("https", "http", "ftp", "file")
ARMORED_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMORED_END = "-----END PGP PUBLIC KEY BLOCK-----"


def check_url(url: str) -> str:
    """``url`` if it is a URL a repository may have (see the module docstring)."""
    no_control(url)
    if any(c.isspace() for c in url):
        raise ValueError(f"{url!r}: a URL has no white space")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{url!r}: give an {', '.join(s + '://' for s in SCHEMES)} URL")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{url!r}: a file:// URL names an absolute path on this host")
    elif not parts.hostname:
        raise ValueError(f"{url!r}: the URL names no host")
    return url


def is_armored_key(text: str) -> bool:
    body = text.strip()
    return body.startswith(ARMORED_BEGIN) and body.endswith(ARMORED_END)


def _check_key(key: str) -> str:
    """A key URL, or an ASCII-armored OpenPGP public key (its lines are its own)."""
    if is_armored_key(key):
        if any(ord(c) < 32 and c not in "\n\r\t" for c in key) or "\x7f" in key:
            raise ValueError("the armored key holds control characters")
        return key
    try:
        return check_url(key)
    except ValueError as exc:
        raise ValueError(f"{exc}; or give the armored key itself ({ARMORED_BEGIN} …)") from None


class Repository(Model):
    id: str
    name: str | None = None
    filename: str | None = None  # osbuild names its .repo file so; a plain file name here
    baseurls: tuple[str, ...] = ()
    mirrorlist: str | None = None
    metalink: str | None = None
    gpgkeys: tuple[str, ...] = ()
    gpgcheck: bool | None = None
    repo_gpgcheck: bool | None = None
    enabled: bool = True
    priority: int | None = None
    sslverify: bool | None = Field(
        default=None, validation_alias=AliasChoices("sslverify", "ssl_verify")
    )
    module_hotfixes: bool | None = None
    # osbuild: install packages from it too. The composer always builds from the listed
    # repositories (composer/rootfs/dnf.py), so this changes nothing; it is accepted.
    install_from: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(
                f"{v!r}: a repository id is letters, digits and '_.:-' (not first '-')"
            )
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return v if v is None else no_control(v)

    @field_validator("baseurls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_url(url) for url in v)

    @field_validator("mirrorlist", "metalink")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return v if v is None else check_url(v)

    @field_validator("gpgkeys")
    @classmethod
    def _keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_key(k) for k in v)

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str | None) -> str | None:
        if v is not None and not _FILENAME.match(v if v.endswith(".repo") else f"{v}.repo"):
            raise ValueError(f"{v!r}: a file name of letters, digits, '_.-' (ending .repo)")
        return v

    @property
    def repo_file(self) -> str:
        """Its file in /etc/yum.repos.d (osbuild's getFilename: ID.repo by default)."""
        name = self.filename or self.id
        return name if name.endswith(".repo") else f"{name}.repo"

    @model_validator(mode="after")
    def _sources_and_signatures(self) -> Repository:
        if not (self.baseurls or self.mirrorlist or self.metalink):
            raise ValueError(f"repository {self.id!r}: give baseurls, mirrorlist or metalink")
        if self.checks_signatures and not self.gpgkeys:
            raise ValueError(
                f"repository {self.id!r}: packages are checked against their signatures: give "
                "gpgkeys (key URLs or the armored keys), or set gpgcheck = false to install "
                "unsigned packages from it"
            )
        return self

    @property
    def checks_signatures(self) -> bool:
        """gpgcheck is on unless the blueprint turns it off (repo_gpgcheck needs keys too)."""
        return self.gpgcheck is not False or bool(self.repo_gpgcheck)

    @property
    def inline_keys(self) -> tuple[str, ...]:
        return tuple(k for k in self.gpgkeys if is_armored_key(k))

    def dnf_options(self, inline_key_urls: Sequence[str] = ()) -> dict[str, str]:
        """The repository's section of a dnf configuration file; ``inline_key_urls``: where
        the backend wrote :attr:`inline_keys` (file:// URLs, in that order)."""
        opts: dict[str, str] = {"name": self.name or self.id, "enabled": str(int(self.enabled))}
        if self.baseurls:
            opts["baseurl"] = " ".join(self.baseurls)
        if self.mirrorlist:
            opts["mirrorlist"] = self.mirrorlist
        if self.metalink:
            opts["metalink"] = self.metalink
        if len(inline_key_urls) != len(self.inline_keys):
            raise ValueError(f"repository {self.id!r}: its armored keys were not written out")
        urls = [k for k in self.gpgkeys if not is_armored_key(k)] + list(inline_key_urls)
        if urls:
            opts["gpgkey"] = " ".join(urls)
        opts["gpgcheck"] = str(int(self.gpgcheck is not False))
        for key in ("repo_gpgcheck", "priority", "sslverify", "module_hotfixes"):
            value = getattr(self, key)
            if value is not None:
                opts[key] = str(int(value) if isinstance(value, bool) else value)
        return opts
