"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .cost import CostModule
from .guards import FiniteGuard, NonFiniteError
from .ppo_lagrangian import PPOLagrangianModule, updates_per_rollout
from .reward import RewardModule
from .sft import SFTModule

__all__ = [
    "CostModule",
    "FiniteGuard",
    "NonFiniteError",
    "PPOLagrangianModule",
    "RewardModule",
    "SFTModule",
    "updates_per_rollout",
]
