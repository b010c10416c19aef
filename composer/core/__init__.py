"""Rank 0: what every layer uses: errors, running tools, atomic files, locks, temporaries, signals, units, hashing, paths, logging, the pydantic base model, secrets."""
