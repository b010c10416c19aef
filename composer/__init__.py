"""dps-composer: VM images with Discoverable Partitions, generic UKIs and a boot verdict."""

__version__ = "0.1.0"

from pathlib import Path

DATA = Path(__file__).parent / "data"
