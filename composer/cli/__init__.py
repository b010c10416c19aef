"""Rank 150: the command line: one module per command group, one error boundary.

``composer.cli:app`` is the ``dps-composer`` entry point."""

from composer.cli.commands import app, main

__all__ = ["app", "main"]
