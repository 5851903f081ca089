"""The ``advantage`` group's estimator, built the one way: Hydra's instantiate."""

from __future__ import annotations

import typing

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ..config import AdvantageEstimator, ConfigError, GAEAdvantage


def build_advantage(cfg: DictConfig) -> AdvantageEstimator:
    """Instantiate the ``advantage`` group (absent: ``gae``); a wrong option is a config error
    naming it."""
    if cfg.get("advantage") is None:
        return GAEAdvantage()
    try:
        estimator = instantiate(cfg.advantage)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"config key 'advantage': {cause}") from None
    if not isinstance(estimator, typing.get_args(AdvantageEstimator)):
        raise ConfigError(
            f"config key 'advantage._target_' must be an advantage estimator, got {type(estimator)}"
        )
    return estimator
