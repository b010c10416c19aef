"""Rank 130: anaconda kickstarts from blueprints (composer/kickstart/render.py renders them)."""
