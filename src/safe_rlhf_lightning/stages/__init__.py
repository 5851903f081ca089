"""One LightningModule per stage; thin wiring over ``functional`` and ``models``."""

from .cdpo import CDPOModule
from .cost import CostModule
from .dpo import DPOModule
from .guards import FiniteGuard, NonFiniteError
from .ppo_lag import PPOLagModule, updates_per_rollout
from .ppo_lag_checkpoint import PPOStepCheckpoint
from .reward import RewardModule
from .sft import SFTModule

__all__ = [
    "CDPOModule",
    "CostModule",
    "DPOModule",
    "FiniteGuard",
    "NonFiniteError",
    "PPOLagModule",
    "PPOStepCheckpoint",
    "RewardModule",
    "SFTModule",
    "updates_per_rollout",
]
