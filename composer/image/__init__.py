"""Rank 40: reading disk images: formats, GPT, file systems, libguestfs, firmware descriptors, varstores."""
