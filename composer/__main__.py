"""``python -m composer``: the command line."""

from composer.cli.commands import main

main()
