"""Anaconda kickstarts from blueprints: jinja2 templates in the repository's kickstart/
folder, every rendered file parsed by pykickstart for the target release with errors fatal."""

from __future__ import annotations

import warnings
from pathlib import Path

import jinja2

from composer import DATA
from composer.blueprint.model import Blueprint
from composer.core import paths
from composer.core.errors import BlueprintError
from composer.kickstart.context import build_context, problems, target_of
from composer.kickstart.quote import KickstartError, quote
from composer.plan.load import load as load_blueprint

__all__ = ["KickstartError", "kickstart_dir", "render", "render_file", "validate"]

TEMPLATE = "fedora-uki.ks.j2"
FIXUP_SCRIPT = "post/dps-fixup.sh"
FIXUP_EOF = "DPS_COMPOSER_FIXUP_EOF"


def kickstart_dir() -> Path:
    """Templates and %post helpers: $DPS_COMPOSER_KICKSTART_DIR, the copy installed with the
    package (composer/data/kickstart), or the repository's kickstart/ beside the package."""
    env = paths.kickstart_dir()
    candidates = [env] if env else []
    candidates += [DATA / "kickstart", Path(__file__).resolve().parents[2] / "kickstart"]
    for c in candidates:
        if (c / TEMPLATE).is_file():
            return c
    raise KickstartError(
        f"kickstart templates not found (looked in {', '.join(map(str, candidates))}); "
        "set DPS_COMPOSER_KICKSTART_DIR to the repository's kickstart/ folder"
    )


def fixup_script(directory: Path | None = None) -> str:
    """The shell twin of `fixup --running`, checked fit for a kickstart %post heredoc."""
    text = ((directory or kickstart_dir()) / FIXUP_SCRIPT).read_text()
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("%") or line.strip() == FIXUP_EOF:
            raise KickstartError(f"{FIXUP_SCRIPT}:{n}: this line would end the %post section")
    return text.rstrip("\n")


def _environment(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        finalize=quote,
        autoescape=False,  # noqa: S701 - not HTML: quote() is the escaping
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(bp: Blueprint, *, source: str = "<blueprint>", uki_repo: str | None = None) -> str:
    """The kickstart for ``bp``; a BlueprintError naming every key a kickstart cannot honour,
    KickstartError for values a kickstart line cannot carry and when pykickstart rejects the
    result."""
    refused = problems(bp, target_of(bp))
    if refused:
        raise bp.error(refused)
    directory = kickstart_dir()
    ctx = build_context(bp, source=source, fixup_script=fixup_script(directory), uki_repo=uki_repo)
    text = _environment(directory).get_template(TEMPLATE).render(ctx)
    validate(text, target_of(bp).pykickstart_version)
    return text


def render_file(path: Path, *, uki_repo: str | None = None) -> str:
    bp = load_blueprint(path)
    try:
        return render(bp, source=path.name, uki_repo=uki_repo)
    except KickstartError as exc:
        raise BlueprintError(str(path), None, "", str(exc)) from None


def validate(text: str, version: str) -> None:
    """Parse with pykickstart for ``version`` ("F42"); errors and warnings are fatal."""
    from pykickstart.errors import KickstartError as PyKsError
    from pykickstart.parser import KickstartParser
    from pykickstart.version import makeVersion, stringToVersion

    try:
        handler = makeVersion(stringToVersion(version))
    except PyKsError:
        raise KickstartError(
            f"distro: pykickstart has no handler for {version}: this release is not supported"
        ) from None
    parser = KickstartParser(handler, errorsAreFatal=True, missingIncludeIsFatal=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            parser.readKickstartFromString(text)
        except (PyKsError, Warning) as exc:
            raise KickstartError(f"pykickstart ({version}) rejects the kickstart: {exc}") from None
