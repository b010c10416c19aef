"""`dps-composer completion SHELL`: the shell completion script (typer's), to source or save."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from typer._completion_shared import get_completion_script

COMPLETE_VAR = "_DPS_COMPOSER_COMPLETE"  # what typer's scripts set when they ask the CLI


def completion(
    shell: Annotated[Literal["bash", "zsh", "fish"], typer.Argument(help="The shell")],
) -> None:
    """Print the completion script for SHELL, e.g. `dps-composer completion bash >
    /etc/bash_completion.d/dps-composer` (or `--install-completion` for this user)."""
    script = get_completion_script(prog_name="dps-composer", complete_var=COMPLETE_VAR, shell=shell)
    typer.echo(script)
