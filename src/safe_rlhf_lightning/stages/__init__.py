"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .cost import CostModule
from .ppo_lagrangian import PPOLagrangianModule, updates_per_rollout
from .reward import RewardModule
from .sft import SFTModule

__all__ = ["CostModule", "PPOLagrangianModule", "RewardModule", "SFTModule", "updates_per_rollout"]
