"""``python -m composer``: the command line."""

from composer.cli.app import main

main()
