"""`dps-composer doctor`: whether this host can build and boot images, and what to install or
set when it cannot."""
