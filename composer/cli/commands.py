"""dps-composer command line: parse, call, render. The work happens in the packages below;
each command group has its module here, and every command reports errors through one boundary
(composer/cli/common.py: ``guard``)."""

from __future__ import annotations

import typer

from composer.cli import boot, build, inspect, install
from composer.cli.cache import cache_app
from composer.cli.keys import keys_app
from composer.cli.matrix import matrix_app
from composer.cli.uki_virt import uki_app
from composer.core.lifetime import install_signal_handlers

app = typer.Typer(
    help="Compose VM images with Discoverable Partitions and a generic UKI; boot and judge them.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help texts are printed as written: "[image]" is not markup
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main() -> None:
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


def main() -> None:
    app()
