"""Rank 150: the command line: one module per command group, one error boundary.

``composer.cli:app`` is the ``dps-composer`` entry point."""

from composer.cli.app import app, main

__all__ = ["app", "main"]
