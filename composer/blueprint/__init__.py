"""Rank 20: the blueprint: reading it safely, line positions, the typed model with osbuild's semantics."""
