"""Validates the composed config and dispatches to the stage's runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from ..config import ConfigError, DataConfig, RunConfig
from ..data import datasets_without_safety_labels
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


def require_safety_labelled_data(data: DataConfig) -> None:
    """The cost model's sign term needs PKU-SafeRLHF's safety labels: refuse a registered
    dataset without them (Anthropic HH-RLHF) before any model is built."""
    for key in ("preference_train", "preference_eval"):
        unlabelled = datasets_without_safety_labels(getattr(data, key))
        if unlabelled:
            raise ConfigError(
                f"config key 'data.{key}' lists {', '.join(map(repr, unlabelled))}, preference "
                "pairs without safety labels (helpfulness/harmlessness preferences only): the "
                "cost stage needs safer_response_id and is_response_*_safe for its sign term. "
                "Use them for the reward stage, and PKU-SafeRLHF (data=pku_saferlhf) or your own "
                "safety-labelled pairs for the cost stage"
            )


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
    if typed.stage.name == "cost":
        require_safety_labelled_data(typed.data)
    from .components import resolve_hub_models

    resolve_hub_models(typed.stage)
    pl.seed_everything(typed.seed, workers=True, verbose=False)
    run_dir = Path(typed.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    log.info("stage %s → %s", typed.stage.name, run_dir)
    return runners[typed.stage.name](cfg, typed, run_dir)
