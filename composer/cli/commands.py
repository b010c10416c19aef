"""dps-composer command line: parse, call, render. The work happens in the packages below;
each command group has its module here, and every command reports errors through one boundary
(composer/cli/common.py: ``guard``). A command module imports the modules of its work inside
the command that runs it: ``--help``, shell completion and every other command start on typer,
rich and composer.core alone (about 0.1 s instead of 0.4 s)."""

from __future__ import annotations

from typing import Annotated

import typer

from composer.cli import boot, build, completion, doctor, inspect, install
from composer.cli.cache import cache_app
from composer.cli.common import out, say
from composer.cli.keys import keys_app
from composer.cli.matrix import matrix_app
from composer.cli.uki_virt import uki_app
from composer.core import version
from composer.core.lifetime import install_signal_handlers

app = typer.Typer(
    help="Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts are printed as written: "[image]" is not markup
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion, --show-completion; and the completion command
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        say(f"dps-composer {version.current()}", console=out)
        raise typer.Exit(0)


@app.callback()
def _main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version (and the git commit of a checkout) and exit",
        ),
    ] = False,
) -> None:
    """Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them."""
    install_signal_handlers()


# in this order in --help
app.command()(build.plan)
app.command()(build.build)
app.command()(boot.boot)
app.command()(inspect.inspect)
app.add_typer(keys_app, name="keys")
app.add_typer(cache_app, name="cache")
app.add_typer(uki_app, name="uki-virt")
app.add_typer(matrix_app, name="matrix")
app.command("kickstart")(install.kickstart)
app.command("fixup")(install.fixup)
app.command("doctor")(doctor.doctor)
app.command("completion")(completion.completion)


def main() -> None:
    app()
