"""Rank 15: facts about the target distributions: supported releases, their base users, groups, zones and locales, account rules, their file hierarchy."""
