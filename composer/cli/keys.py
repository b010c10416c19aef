"""`dps-composer keys generate DIR`: Secure Boot keys and the PCR policy signing key pair."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from composer.cli.common import JsonStyle, guard, human, print_json, say, wrote
from composer.core.workdir import made_once

if TYPE_CHECKING:  # imported when keys are made: the other commands start without them
    from composer.toolchain.pcrkey import PcrKey
    from composer.toolchain.secureboot import KeySet

keys_app = typer.Typer(
    help="Secure Boot keys (PK, KEK, db) and the PCR policy signing key pair.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Argument(help="Directory for the new keys (created)")],
    common_name: Annotated[
        str, typer.Option("--common-name", help="Prefix of the certificates' CN")
    ] = "dps-composer",
    pcr_only: Annotated[
        bool,
        typer.Option(
            "--pcr-only",
            help="Only the PCR policy signing key pair (into an existing Secure Boot key "
            "directory, or a new one)",
        ),
    ] = False,
    json_style: JsonStyle = None,
) -> None:
    """Generate PK, KEK and db (RSA 2048, self-signed X.509) and the PCR policy signing key
    pair (tpm2-pcr-private-key.pem, tpm2-pcr-public-key.pem: RSA 2048) in DIRECTORY; private
    files mode 0600, the directory 0700. A new DIRECTORY appears whole or not at all."""
    with guard():
        keys, pcr = _generate(directory, common_name, pcr_only)
    console = human(json_style)
    files = [*(keys.files() if keys else []), pcr.private, pcr.public]
    for path in files:
        wrote(path, console=console)
    if keys:
        say(f"signature owner GUID: {keys.owner}", console=console)
    say(f"PCR policy public key SHA-256: {pcr.fingerprint}", console=console)
    if json_style:
        data = {"directory": str(directory), "files": [str(p) for p in files]}
        data |= {"owner_guid": keys.owner} if keys else {}
        print_json({**data, "pcr_public_key_sha256": pcr.fingerprint}, json_style)


def _generate(directory: Path, common_name: str, pcr_only: bool) -> tuple[KeySet | None, PcrKey]:
    """The keys in ``directory``. A new directory is filled beside it and renamed into place
    (composer/core/workdir.py made_once), so that a run killed half-way leaves no incomplete
    key set for a later build to trip over; in an existing (private) directory each key file
    is whole or absent, and nothing there is overwritten."""
    from composer.toolchain.pcrkey import PcrKey, generate_pcr_key
    from composer.toolchain.secureboot import (
        KeySet,
        SecureBootKeyError,
        generate_keys,
        private_directory,
    )

    made: list[KeySet | None] = []

    def fill(path: Path) -> None:
        made.append(None if pcr_only else generate_keys(path, common_name))
        if pcr_only:
            private_directory(path)
        generate_pcr_key(path)

    if os.path.lexists(directory):
        fill(directory)
    elif not made_once(directory, fill):
        raise SecureBootKeyError(
            f"{directory}: made by another command while the keys were generated; refusing to "
            "overwrite keys (use another directory)"
        )
    keys = made[0]
    return (KeySet(directory, keys.owner) if keys else None), PcrKey(directory)
