"""Rank 30: pure planning: blueprint -> plan (layout, rules, judgement against the target, the key table)."""
