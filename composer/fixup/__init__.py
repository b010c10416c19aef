"""Make an installed system or an existing image DPS- and UKI-ready.

``facts`` is what a system looks like (gathered by ``running`` on the live system or by
``guest`` through libguestfs), ``plan`` turns facts into actions (pure, shared by both paths),
``edits`` holds the text transformations (fstab, kernel command lines).
"""
