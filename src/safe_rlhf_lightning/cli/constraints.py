"""The ``constraints`` group, built: each constraint's λ schedule (through the same schemas as
the ``lambda_schedule`` group), scorer and cost critic, checked before any model is loaded.

``check_constraints`` runs with the other value checks (``runner.validate_config``): scorer
names and the λ schedules' options. ``check_heads`` reads each cost model folder's
``config.json`` (no weights) before the runner loads a model; ``load_constraints`` then loads
every cost model once, however many constraints read its heads.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import MODEL_SCORER, ConfigError, ConstraintConfig, RunConfig
from ..lagrange import LambdaSchedule
from ..models import ScoreModel
from ..stages.ppo_lag_constraints import RULE_SCORERS, Constraint
from .schema import LAMBDA_SCHEDULES, constructor_schema


def build_constraint_schedule(
    name: str, constraint: ConstraintConfig, top: dict[str, Any] | None
) -> LambdaSchedule:
    """Constraint ``name``'s λ schedule: its ``lambda_schedule`` node (or the top-level one,
    overridden by its options) merged into the schema of its class, with ``cost_limit`` its
    ``limit``; a wrong option is a ConfigError naming it."""
    key = f"constraints.{name}.lambda_schedule"
    own = dict(constraint.lambda_schedule or {})
    if "cost_limit" in own:
        raise ConfigError(
            f"config key '{key}.cost_limit' is constraints.{name}.limit: set it there"
        )
    node = own if "_target_" in own else {**(top or {}), **own}
    classes = {f"{cls.__module__}.{cls.__qualname__}": cls for cls in LAMBDA_SCHEDULES.values()}
    if node.get("_target_") not in classes:
        raise ConfigError(
            f"config key '{key}._target_' must be one of {sorted(classes)}, "
            f"got {node.get('_target_')!r}"
        )
    cls = get_class(node["_target_"])
    if "cost_limit" in inspect.signature(cls).parameters:
        node["cost_limit"] = constraint.limit
    try:
        merged = OmegaConf.merge(OmegaConf.structured(constructor_schema(cls)), node)
        schedule = instantiate(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(f"config key '{key}': {str(error).splitlines()[0]}") from None
    except InstantiationException as error:
        raise ConfigError(f"config key '{key}': {error.__cause__ or error}") from None
    return schedule


def check_constraints(typed: RunConfig) -> None:
    """Scorer names and λ schedule options of every constraint (no folder is read)."""
    for name, constraint in typed.constraints.items():
        if constraint.scorer != MODEL_SCORER and constraint.scorer not in RULE_SCORERS:
            raise ConfigError(
                f"config key 'constraints.{name}.scorer' must be {MODEL_SCORER!r} or a rule "
                f"scorer ({', '.join(sorted(RULE_SCORERS))}), got {constraint.scorer!r}"
            )
        build_constraint_schedule(name, constraint, typed.lambda_schedule)


def check_heads(typed: RunConfig) -> None:
    """Each model-scored constraint's ``head`` exists in its cost model (read from the folder's
    ``config.json``; a folder without one is left to the model loading's own check)."""
    for name, constraint in typed.constraints.items():
        config = Path(constraint.cost_model or "") / "config.json"
        if constraint.scorer != MODEL_SCORER or not config.is_file():
            continue
        heads = json.loads(config.read_text()).get("score_dim", 1)
        head = constraint.head
        if (head is None and heads != 1) or (head is not None and head >= heads):
            raise ConfigError(
                f"config key 'constraints.{name}.head' must be "
                f"{'null' if heads == 1 else f'an index in [0, {heads})'}: the cost model in "
                f"{constraint.cost_model} has {heads} head(s), got {head!r}"
            )


@dataclass
class ConstraintModels:
    """What the module takes for ``constraints``: the constraints, each cost model by the name
    of the constraint it scores (one model may serve several), and the folders its critics
    start from (two-stream constraints only)."""

    constraints: list[Constraint]
    cost_models: dict[str, ScoreModel]
    # name -> (folder, config key, the head to start from when it is the constraint's model)
    critic_inits: dict[str, tuple[str, str, int | None]]


def load_constraints(
    typed: RunConfig, load_cost_model, reward_critic_init: str
) -> ConstraintModels:
    """Build every constraint; ``load_cost_model(folder, key)`` -> (model, retokenizer) is
    called once per distinct folder."""
    loaded: dict[str, tuple[ScoreModel, Any]] = {}
    constraints, models, critic_inits = [], {}, {}
    for name, spec in typed.constraints.items():
        schedule = build_constraint_schedule(name, spec, typed.lambda_schedule)
        if spec.scorer == MODEL_SCORER:
            folder = spec.cost_model
            if folder not in loaded:
                loaded[folder] = load_cost_model(folder, f"constraints.{name}.cost_model")
            models[name], retokenizer = loaded[folder]
            constraints.append(
                Constraint(name, schedule, spec.limit, None, spec.head or 0, retokenizer)
            )
        else:
            constraints.append(Constraint(name, schedule, spec.limit, RULE_SCORERS[spec.scorer]))
        if schedule.two_streams:
            start = spec.critic_init or spec.cost_model or reward_critic_init
            head = spec.head or 0 if start == spec.cost_model else None
            critic_inits[name] = (start, f"constraints.{name}.critic_init", head)
    return ConstraintModels(constraints, models, critic_inits)
