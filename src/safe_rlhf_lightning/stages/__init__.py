"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .sft import SFTModule

__all__ = ["SFTModule"]
