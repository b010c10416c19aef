"""Rank 70: the tools tree, dracut + ukify, initrds, Secure Boot keys and signing."""
