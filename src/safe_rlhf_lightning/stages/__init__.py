"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .cost import CostModule
from .reward import RewardModule
from .sft import SFTModule

__all__ = ["CostModule", "RewardModule", "SFTModule"]
