"""Registers the typed schemas of ``config`` with Hydra's ConfigStore.

``conf/train.yaml`` starts from ``run_schema``; each stage option extends its own schema
(``conf/stage/sft.yaml`` lists ``sft_schema`` in its defaults), so every group is type-checked.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from ..config import (
    BenchmarkCommandConfig,
    CollectStageConfig,
    EvalStageConfig,
    PPOStageConfig,
    PreferenceStageConfig,
    RunConfig,
    SFTStageConfig,
)

STAGE_SCHEMAS = {
    "sft": SFTStageConfig,
    "reward": PreferenceStageConfig,
    "cost": PreferenceStageConfig,
    "ppo_lag": PPOStageConfig,
    "eval": EvalStageConfig,
    "collect": CollectStageConfig,
}


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(name="benchmark_schema", node=BenchmarkCommandConfig)
    for name, schema in STAGE_SCHEMAS.items():
        store.store(group="stage", name=f"{name}_schema", node=schema)
