"""`dps-composer keys generate DIR`: Secure Boot keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from composer.cli.common import JsonStyle, guard, human, print_json, say, wrote
from composer.toolchain.secureboot import generate_keys

keys_app = typer.Typer(
    help="Secure Boot keys (PK, KEK, db).", no_args_is_help=True, rich_markup_mode=None
)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Argument(help="Directory for the new keys (created)")],
    common_name: Annotated[
        str, typer.Option("--common-name", help="Prefix of the certificates' CN")
    ] = "dps-composer",
    json_style: JsonStyle = None,
) -> None:
    """Generate PK, KEK and db (RSA 2048, self-signed X.509, files mode 0600) in DIRECTORY."""
    with guard():
        keys = generate_keys(directory, common_name)
    console = human(json_style)
    for path in keys.files():
        wrote(path, console=console)
    say(f"signature owner GUID: {keys.owner}", console=console)
    if json_style:
        files = {"directory": str(directory), "files": [str(p) for p in keys.files()]}
        print_json({**files, "owner_guid": keys.owner}, json_style)
