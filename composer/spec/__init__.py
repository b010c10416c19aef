"""Rank 10: pure standards: the Discoverable Partitions Specification, PE/COFF, the TCG event log, EFI architectures, os-release."""
