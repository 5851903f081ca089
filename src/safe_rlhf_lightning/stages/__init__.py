"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .cost import CostModule
from .guards import FiniteGuard, NonFiniteError
from .ppo_checkpoint import PPOStepCheckpoint
from .ppo_lagrangian import PPOLagrangianModule, updates_per_rollout
from .reward import RewardModule
from .sft import SFTModule

__all__ = [
    "CostModule",
    "FiniteGuard",
    "NonFiniteError",
    "PPOLagrangianModule",
    "PPOStepCheckpoint",
    "RewardModule",
    "SFTModule",
    "updates_per_rollout",
]
