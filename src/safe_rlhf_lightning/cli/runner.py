"""Validates the composed config and dispatches to the stage's runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from ..config import ConfigError, RunConfig
from ..files import write_text_atomic

log = logging.getLogger(__name__)


def validate_config(cfg: DictConfig) -> RunConfig:
    """Turn the composed config into the typed dataclasses, running every value check."""
    try:
        typed = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise ConfigError(f"config key '{error.full_key}' is required but not set") from None
    except InterpolationResolutionError as error:  # e.g. a round missing from the rounds table
        cause = error.__cause__
        raise ConfigError(str(cause if isinstance(cause, ConfigError) else error)) from None
    except ValueError as error:  # raised by the schemas' __post_init__, names the key
        raise ConfigError(str(error)) from None
    assert isinstance(typed, RunConfig)
    return typed


def _stage_runners() -> dict[str, Callable]:
    from .collect import run_collect
    from .evaluate import run_eval
    from .ppo import run_ppo
    from .preference import run_preference
    from .sft import run_sft

    return {
        "sft": run_sft,
        "reward": run_preference,
        "cost": run_preference,
        "ppo_lag": run_ppo,
        "eval": run_eval,
        "collect": run_collect,
    }


def run_stage(cfg: DictConfig) -> dict:
    typed = validate_config(cfg)
    runners = _stage_runners()
    if typed.stage.name not in runners:
        raise ConfigError(f"config key 'stage.name' must be one of {sorted(runners)}")
    pl.seed_everything(typed.seed, workers=True, verbose=False)
    run_dir = Path(typed.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    log.info("stage %s → %s", typed.stage.name, run_dir)
    return runners[typed.stage.name](cfg, typed, run_dir)
