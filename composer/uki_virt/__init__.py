"""Rank 80: uki-virt: the generic VM UKI as .deb/.rpm packages and a repository."""
