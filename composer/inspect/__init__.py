"""Rank 90: `inspect`: what an image is and whether its root is discoverable."""
