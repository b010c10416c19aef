"""Rank 110: `boot`: QEMU, OVMF, swtpm, the serial protocol, verdicts and reports."""
