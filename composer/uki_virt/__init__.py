"""Rank 80: uki-virt: the generic VM UKI as .deb/.rpm packages and a repository."""

# the UKI's built-in command line: the kernel's console on the first screen and serial port
DEFAULT_CMDLINE = "console=tty0 console=ttyS0"
