"""Rank 55: the image manifest: the typed contract between `build` and `boot`."""
