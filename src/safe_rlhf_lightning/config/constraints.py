"""Schema of the ``constraints`` group: PPO-Lagrangian under several constraints at once.

Each constraint is ``E[cost_k] <= limit_k`` with its own scorer, limit and λ schedule, and the
actor's advantage is ``(A_R - Σ_k λ_k·A_Ck) / (1 + Σ_k λ_k)`` over the constraints whose schedule
is two-stream (``learned``, ``pid``); a ``fixed`` one shapes the reward (R - ν_k·C_k) and a
``none`` one is only logged. The group is a mapping from each constraint's name (the key, used in
metric keys ``lambda/<name>``, ``cost/<name>`` and in the names of its models) to a
:class:`ConstraintConfig`, kept in order.

No constraint (the default: no option of the group selected) is today's single constraint, named
``cost``: the cost model ``stage.cost_model``, the limit ``cost_threshold.cost_limit`` and the
``lambda_schedule`` group; the option ``cost`` lists it explicitly, with the same results bit for
bit. The names are the keys of a mapping, so each appears once (a YAML file naming one twice is
refused while it is read, naming it). A constraint is added on the command line with
``+constraints.<name>={scorer: length, limit: 24}``. Scorer names, head indices and the λ
schedules' options are checked before any model is loaded (``cli/constraints.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from .checks import ConfigError, _check

# The one scorer that reads a model; every other ``scorer`` names a rule scorer
# (``stages.constraints.RULE_SCORERS``).
MODEL_SCORER = "cost_model"
# Names the module derives attributes from (``<name>_model``, ``<name>_critic``) that a
# constraint cannot take.
RESERVED_NAMES = frozenset({"reward"})
# The name of the single constraint of ``constraints: null``.
DEFAULT_NAME = "cost"


@dataclass
class ConstraintConfig:
    """One constraint ``E[cost] <= limit`` of PPO-Lagrangian (an entry of ``constraints``)."""

    limit: float = MISSING
    """The limit of the constraint, in the scorer's units: cost-model units for a cost model
    (C > 0 unsafe, as ``cost_threshold.cost_limit``), tokens for ``length``."""
    scorer: str = MODEL_SCORER
    """``cost_model`` (the cost model folder ``cost_model``, head ``head``) or the name of a
    rule scorer: ``length`` (the response's length in tokens, its EOS included, as the logged
    ``mean_generated_length``)."""
    cost_model: Optional[str] = None
    """Folder of the cost model (``scorer: cost_model``): a one-head folder (ours or upstream's)
    or a multi-head one with ``head``."""
    head: Optional[int] = None
    """Which score of a multi-head cost model is this constraint's cost (0-based); null for a
    one-head model."""
    critic_init: Optional[str] = None
    """Where this constraint's cost critic (``advantage=gae`` with a two-stream schedule)
    starts: a score model or causal LM folder sharing the actor's tokens; null is the cost
    model itself (a rule scorer has none: then ``stage.reward_critic_init``)."""
    lambda_schedule: Any = None
    """This constraint's λ schedule in the ``lambda_schedule`` group's form: ``_target_`` (a
    schedule class of ``safe_rlhf_lightning.lagrange``) and its constructor's options, checked
    against the same schema. Options without ``_target_`` override the top-level
    ``lambda_schedule``'s; null is that schedule as it is. Its ``cost_limit`` is always
    ``limit``: set it there."""

    def check(self, name: str) -> None:
        """The checks that need no registry; ``name`` is the constraint's key."""
        key = f"constraints.{name}"
        _check(
            name.isidentifier() and name not in RESERVED_NAMES,
            key,
            f"named by an identifier other than {sorted(RESERVED_NAMES)}",
            name,
        )
        _check(math.isfinite(self.limit), f"{key}.limit", "finite", self.limit)
        uses_model = self.scorer == MODEL_SCORER
        _check(
            uses_model == (self.cost_model is not None),
            f"{key}.cost_model",
            "a folder exactly when scorer is cost_model",
            self.cost_model,
        )
        _check(
            self.head is None or (uses_model and self.head >= 0),
            f"{key}.head",
            "null, or an index >= 0 with scorer cost_model",
            self.head,
        )
        _check(
            self.lambda_schedule is None or isinstance(self.lambda_schedule, dict),
            f"{key}.lambda_schedule",
            "null or a mapping of lambda_schedule options",
            self.lambda_schedule,
        )


def typed_constraints(entries: dict[str, Any]) -> dict[str, ConstraintConfig]:
    """The ``constraints`` mapping with each entry a checked :class:`ConstraintConfig`; an
    unknown field, a value of the wrong type or a missing limit is a ConfigError naming it."""
    typed = {}
    for name, entry in entries.items():
        key = f"constraints.{name}"
        if not isinstance(entry, ConstraintConfig):
            _check(isinstance(entry, dict), key, "a mapping of ConstraintConfig fields", entry)
            try:
                node = OmegaConf.merge(OmegaConf.structured(ConstraintConfig), entry)
                entry = OmegaConf.to_object(node)
            except MissingMandatoryValue as error:
                raise ConfigError(f"config key '{key}.{error.full_key}' is required") from None
            except OmegaConfBaseException as error:
                first = str(error).splitlines()[0]
                raise ConfigError(f"config key '{key}.{error.full_key}': {first}") from None
        entry.check(name)
        typed[name] = entry
    return typed
