"""The boot chain on the ESP: systemd-boot, GRUB or the firmware itself."""
