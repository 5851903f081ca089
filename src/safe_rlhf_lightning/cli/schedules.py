"""The ``lambda_schedule`` group's schedule, built the one way: Hydra's instantiate."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config import ConfigError
from ..lagrange import LambdaSchedule


def build_schedule(cfg: DictConfig) -> LambdaSchedule:
    """Instantiate the ``lambda_schedule`` group; a wrong option is a config error naming it."""
    if cfg.get("lambda_schedule") is None:
        raise ConfigError("config key 'lambda_schedule' is required by the ppo_lag and cdpo stages")
    try:
        schedule = instantiate(cfg.lambda_schedule)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"config key 'lambda_schedule': {cause}") from None
    if not isinstance(schedule, LambdaSchedule):
        raise ConfigError(
            f"config key 'lambda_schedule._target_' must be a LambdaSchedule, got {type(schedule)}"
        )
    return schedule
