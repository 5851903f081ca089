"""Every stage the ``stage`` group can choose: its runner and the data it reads (checked before
any model is loaded). A new stage adds one line here, its module, its schema and its runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..config import RunConfig
from .cdpo import cdpo_data, run_cdpo
from .collect import collect_data, run_collect
from .dpo import dpo_data, run_dpo
from .evaluate import eval_data, run_eval
from .ppo_lag import ppo_lag_data, run_ppo_lag
from .preference import preference_data, run_preference
from .runner import DataNeed, StageContext
from .sft import run_sft, sft_data


@dataclass(frozen=True)
class Stage:
    run: Callable[[StageContext], dict]
    data_needs: Callable[[RunConfig], list[DataNeed]]


STAGES = {
    "sft": Stage(run_sft, sft_data),
    "reward": Stage(run_preference, preference_data),
    "cost": Stage(run_preference, preference_data),
    "ppo_lag": Stage(run_ppo_lag, ppo_lag_data),
    "eval": Stage(run_eval, eval_data),
    "collect": Stage(run_collect, collect_data),
    "dpo": Stage(run_dpo, dpo_data),
    "cdpo": Stage(run_cdpo, cdpo_data),
}
