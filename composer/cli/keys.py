"""`dps-composer keys generate DIR`: Secure Boot keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from composer.cli.common import guard, out, say, wrote
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
) -> None:
    """Generate PK, KEK and db (RSA 2048, self-signed X.509, files mode 0600) in DIRECTORY."""
    with guard():
        keys = generate_keys(directory, common_name)
    for path in keys.files():
        wrote(path)
    say(f"signature owner GUID: {keys.owner}", console=out)
