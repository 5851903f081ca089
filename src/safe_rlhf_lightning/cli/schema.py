"""Registers the typed schemas of ``config`` with Hydra's ConfigStore.

``conf/train.yaml`` starts from ``run_schema``; each stage option extends its own schema
(``conf/stage/sft.yaml`` lists ``sft_schema`` in its defaults), so every group is type-checked.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from ..config import (
    BenchmarkCommandConfig,
    CDPOStageConfig,
    CollectStageConfig,
    DPOStageConfig,
    EvalStageConfig,
    GAEAdvantage,
    GRPOAdvantage,
    PPOLagStageConfig,
    PreferenceStageConfig,
    RLOOAdvantage,
    RunConfig,
    SFTStageConfig,
)
from ..lagrange import FixedLambda, LearnedLambda, NoLambda, PIDLambda

STAGE_SCHEMAS = {
    "sft": SFTStageConfig,
    "reward": PreferenceStageConfig,
    "cost": PreferenceStageConfig,
    "ppo_lag": PPOLagStageConfig,
    "eval": EvalStageConfig,
    "collect": CollectStageConfig,
    "dpo": DPOStageConfig,
    "cdpo": CDPOStageConfig,
}


LAMBDA_SCHEDULES = {
    "learned": LearnedLambda,
    "pid": PIDLambda,
    "fixed": FixedLambda,
    "none": NoLambda,
}

# The advantage group's estimators: frozen dataclasses, their schemas made from them the same way.
ADVANTAGE_ESTIMATORS = {"gae": GAEAdvantage, "grpo": GRPOAdvantage, "rloo": RLOOAdvantage}


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(name="benchmark_schema", node=BenchmarkCommandConfig)
    for name, schema in STAGE_SCHEMAS.items():
        store.store(group="stage", name=f"{name}_schema", node=_mergeable(schema))
    for name, cls in LAMBDA_SCHEDULES.items():
        store.store(group="lambda_schedule", name=f"{name}_schema", node=constructor_schema(cls))
    for name, cls in ADVANTAGE_ESTIMATORS.items():
        store.store(group="advantage", name=f"{name}_schema", node=constructor_schema(cls))


def _mergeable(schema: type) -> object:
    """A frozen dataclass as a config node that YAML files and overrides can still be merged
    into: OmegaConf marks such nodes read-only, which composition cannot write. Converting the
    composed config (``OmegaConf.to_object``) still builds the frozen dataclass."""
    node = OmegaConf.structured(schema)
    OmegaConf.set_readonly(node, False)
    return node


def constructor_schema(cls: type) -> type:
    """A structured-config schema made from ``cls``'s constructor: one field per argument, with
    the constructor's own type and default (the one definition), plus ``_target_``. Registered
    for a group whose options Hydra instantiates (``lambda_schedule``), so that every option can
    be overridden and a typo or a wrong type fails while the config is composed."""
    hints = typing.get_type_hints(cls.__init__)
    fields = [("_target_", str, dataclasses.field(default=f"{cls.__module__}.{cls.__qualname__}"))]
    for name, parameter in inspect.signature(cls).parameters.items():
        kind = _optional(hints.get(name, typing.Any))
        default = MISSING if parameter.default is inspect.Parameter.empty else parameter.default
        fields.append((name, kind, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", fields)


def _optional(kind: Any) -> Any:
    """``X | None`` (which OmegaConf does not read) as ``Optional[X]``."""
    arguments = typing.get_args(kind)
    if isinstance(kind, types.UnionType) and type(None) in arguments:
        (other,) = [a for a in arguments if a is not type(None)]
        return typing.Optional[other]
    return kind
