"""Rank 100: `build`: the ordered stages, the stage cache, outputs and publishing."""
