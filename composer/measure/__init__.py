"""Rank 50: measured boot: PCR 11 (systemd-stub), firmware PCRs 4 and 7, event-log comparison."""
