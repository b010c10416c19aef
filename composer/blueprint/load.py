"""Reading a blueprint: TOML text -> the typed model (composer/blueprint/model.py), every
problem named with its file, line, key and reason; ``uri`` files read into the model.

Checks that need the partition layout or the target's tree are the plan's
(composer/plan/load.py), which also reads blueprints this way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from composer.blueprint.lines import dotted
from composer.blueprint.model import Blueprint
from composer.blueprint.text import located, parse_toml, read_blueprint
from composer.core.errors import BlueprintError, Problem
from composer.core.model import valid_keys_at


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuplify(v) for k, v in value.items()}
    return value


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        valid = valid_keys_at(Blueprint, loc)
        return "unknown key" + (f"; valid keys here: {', '.join(valid)}" if valid else "")
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return msg
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a table"
    return f"{msg} (got {type(value).__name__} {shown})"


def _loc(err: dict[str, Any]) -> tuple[str | int, ...]:
    # pydantic appends pseudo-locations for unions and literals; drop them.
    return tuple(
        p for p in err["loc"] if isinstance(p, int) or not p.startswith(("literal[", "function-"))
    )


def parse(text: str, file: str = "<blueprint>") -> Blueprint:
    """Parse and validate blueprint TOML text; every error names file, line, key and reason."""
    data = parse_toml(text, file)
    try:
        bp = Blueprint.model_validate(_tuplify(data))
    except ValidationError as exc:
        problems = [Problem(dotted(_loc(dict(e))), _describe(dict(e))) for e in exc.errors()]
        raise located(file, text, problems) from None
    return bp.located_at(file, text)


def load(path: Path) -> Blueprint:
    """The blueprint file ``path``, its [[customizations.files]] ``uri`` read."""
    return read_uris(parse(read_blueprint(path), str(path)), path)


def read_uris(bp: Blueprint, path: Path) -> Blueprint:
    """[[customizations.files]] ``uri`` (file:///, as osbuild) read into ``data``: the plan
    carries the content, so the build and its cache key see it.

    On a shared build host a blueprint must not copy the host's files into an image (a key,
    /etc/shadow): the file must lie in the blueprint's own directory tree (after resolving
    links) and be a regular file of a blueprint's size."""
    files = list(bp.customizations.files)
    problems = []
    base = path.resolve().parent
    for i, f in enumerate(files):
        if not f.uri:
            continue
        key = f"customizations.files[{i}].uri"
        named = f.uri.removeprefix("file://") if f.uri.startswith("file://") else f.uri[5:]
        source = base / named
        try:
            real = source.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            problems.append(Problem(key, f"cannot read {source}: {getattr(exc, 'strerror', exc)}"))
            continue
        if not real.is_relative_to(base):
            problems.append(Problem(
                key,
                f"{source} is outside the blueprint's directory {base}: on a shared build host "
                "a blueprint may only take files that lie beside it",
            ))  # fmt: skip
            continue
        try:
            data = read_blueprint(real)
        except BlueprintError as exc:
            problems.append(Problem(key, f"cannot read {source}: {exc.message}"))
            continue
        files[i] = f.model_copy(update={"data": data, "uri": ""})
    if problems:
        raise bp.error(problems)
    if files == list(bp.customizations.files):
        return bp
    c = bp.customizations.model_copy(update={"files": tuple(files)})
    out = bp.model_copy(update={"customizations": c})
    return out.located_at(bp._file, bp._text)
