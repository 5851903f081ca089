"""The constraints of PPO-Lagrangian at run time: E[cost_k] <= limit_k, k = 1..K, each with its
scorer and λ schedule (``config/constraints.py`` is their schema).

Interface (what ``PPOLagModule`` calls):

- :class:`Constraint`: a constraint's name, λ schedule, limit and scorer (a rule scorer, or the
  head of the module's frozen ``<name>_model``); its cost critic, when it has one, is the
  module's ``<name>_critic``. The single constraint of today is ``Constraint("cost", schedule)``
  with ``cost_model`` and ``cost_critic``: the names, state-dict keys and metric keys of today.
- :func:`update_multipliers`: every constraint's λ from its window of episode costs, gathered
  from every rank (so every multiplier is identical on every rank);
- :func:`constraint_stats`: the logged cost and λ of each constraint.

A rule scorer is a function ``(input_ids, attention_mask, response_mask) -> (B,) cost``
registered in :data:`RULE_SCORERS` under the name ``constraints.<name>.scorer`` selects.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..functional import response_lengths
from ..lagrange import LambdaSchedule
from ..models import ScoreModel
from ..rollout import Retokenizer, end_scores
from .guards import NonFiniteError, nonfinite_names

RuleScorer = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(input_ids (B, P + T), attention_mask (B, P + T), response_mask (B, T)) -> (B,) float cost."""


def length_cost(input_ids: Tensor, attention_mask: Tensor, response_mask: Tensor) -> Tensor:
    """The response's length in tokens, its EOS included (``E[length] <= limit`` tokens)."""
    return response_lengths(response_mask)


RULE_SCORERS: dict[str, RuleScorer] = {"length": length_cost}


@dataclass
class Constraint:
    """One constraint ``E[cost] <= limit`` of a PPO-Lagrangian module.

    Args:
        name: an identifier; the module's ``<name>_model`` scores it (unless ``rule``) and its
            ``<name>_critic`` estimates its values (two-stream schedules with ``gae``).
        schedule: its λ schedule (learned, pid: a cost stream mixed with λ; fixed: the reward
            shaped R - ν·C; none: only logged).
        limit: the limit, for the log (the two-stream schedules hold their own ``cost_limit``);
            None when it has none (``fixed``/``none`` built without one).
        rule: a rule scorer instead of a model.
        head: which of the cost model's scores is this constraint's cost.
        retokenizer: when the cost model's tokenizer is not the actor's.
    """

    name: str
    schedule: LambdaSchedule
    limit: float | None = None
    rule: RuleScorer | None = None
    head: int = 0
    retokenizer: Retokenizer | None = None

    @property
    def two_streams(self) -> bool:
        return self.schedule.two_streams


def check_models(
    constraints: Sequence[Constraint],
    advantage: Any,
    cost_models: dict[str, ScoreModel | None],
    reward_critic: ScoreModel | None,
    cost_critics: dict[str, ScoreModel | None],
) -> bool:
    """Critics exactly with a critic estimator (``advantage.critics``); every two-stream
    constraint scored and (with critics) given a critic of its own or a head of a shared one.
    Returns whether ``reward_critic`` is shared (one head per stream); a ValueError otherwise."""
    has_cost_critics = any(critic is not None for critic in cost_critics.values())
    if advantage.critics != (reward_critic is not None) or (
        not advantage.critics and has_cost_critics
    ):
        raise ValueError(
            f"the {advantage.name} advantage estimator takes critics: {advantage.critics}"
        )
    streams = [c for c in constraints if c.two_streams]
    shared = reward_critic is not None and reward_critic.score_dim > 1 and not has_cost_critics
    if shared and streams and reward_critic.score_dim != 1 + len(streams):
        raise ValueError(
            f"a shared critic for {len(streams)} cost streams needs {1 + len(streams)} heads, "
            f"got {reward_critic.score_dim}"
        )
    for constraint in streams:
        scored = constraint.rule is not None or cost_models.get(constraint.name) is not None
        critic = cost_critics.get(constraint.name) is not None or shared
        if not scored or (advantage.critics and not critic):
            raise ValueError(
                "a two-stream λ schedule needs a cost model and a cost critic (or a shared "
                f"critic: a two-head reward_critic); constraint {constraint.name!r} lacks one"
            )
    return shared


def sample_rows(
    constraints: Sequence[Constraint],
    step: int,
    prompts: list[str],
    responses: list[str],
    rollout: Any,
) -> list[dict]:
    """The sample table's rows: the cost column is ``cost`` with one constraint, ``cost/<name>``
    for each of several."""
    names = [c.name for c in constraints]
    columns = ["cost"] if len(names) == 1 else [f"cost/{n}" for n in names]
    costs = rollout.cost.T.tolist()  # (B, K)
    rewards = rollout.reward.tolist()
    return [
        {"step": step, "prompt": p, "response": r, "reward": rw}
        | dict(zip(columns, c, strict=True))
        for p, r, rw, c in zip(prompts, responses, rewards, costs, strict=True)
    ]


def require_distinct_names(constraints: Sequence[Constraint]) -> None:
    names = [c.name for c in constraints]
    if not names or len(set(names)) != len(names) or "reward" in names:
        raise ValueError(f"constraints need distinct names other than 'reward', got {names}")


def rollout_costs(
    constraints: Sequence[Constraint],
    models: dict[str, ScoreModel | None],
    input_ids: Tensor,
    attention_mask: Tensor,
    response_mask: Tensor,
    like: Tensor,
) -> Tensor:
    """(K, B) the end cost of each constraint: its rule's, its model's head's (one forward pass
    per distinct model and retokenizer, whatever the number of heads read), or zeros (``like``,
    (B,)) when it has neither (a ``none`` schedule without a cost model)."""
    scored: dict[tuple[int, int], Tensor] = {}
    rows = []
    for constraint in constraints:
        model = models.get(constraint.name)
        if constraint.rule is not None:
            rows.append(constraint.rule(input_ids, attention_mask, response_mask).to(like))
        elif model is not None:
            key = (id(model), id(constraint.retokenizer))
            if key not in scored:
                scored[key] = end_scores(model, input_ids, attention_mask, constraint.retokenizer)
            rows.append(scored[key][:, constraint.head])
        else:
            rows.append(torch.zeros_like(like))
    return torch.stack(rows)


def update_multipliers(
    constraints: Sequence[Constraint], gathered_costs: Tensor, step: int
) -> list[dict[str, float]]:
    """Record one rollout's costs and update every λ; returns each schedule's stats.

    ``gathered_costs`` is the rollout's (K, B) end costs gathered from every rank: (K, B) on one
    process, (W, K, B) on W; each schedule's window receives its row of every rank in rank
    order, so every rank computes the same λ_k.
    """
    k, batch = len(constraints), gathered_costs.shape[-1]
    per_rank = gathered_costs.reshape(-1, k, batch)  # (W, K, B)
    stats = []
    for index, constraint in enumerate(constraints):
        stats.append(constraint.schedule.update(per_rank[:, index].flatten(), step=step))
        value = constraint.schedule.lambda_value
        if nonfinite_names({"λ": value}):  # never skipped: its state would be lost
            raise NonFiniteError(f"λ became {value} at step {step} (constraint {constraint.name})")
    return stats


def constraint_stats(
    constraints: Sequence[Constraint], mean_costs: Sequence[float], schedule_stats: list[dict]
) -> dict[str, float]:
    """What is logged of the constraints: with one, today's keys (``cost``, ``lambda``,
    ``episode_cost``, ...); with several, each key per constraint (``cost/<name>``,
    ``lambda/<name>``, ``episode_cost/<name>``, ...) and ``lambda`` the sum Σ λ_k, the weight of
    all costs together in the actor's advantage."""
    if len(constraints) == 1:
        (stats,) = schedule_stats
        return {
            "cost": mean_costs[0],
            "lambda": constraints[0].schedule.lambda_value,
            **{k: v for k, v in stats.items() if k != "lambda"},
        }
    out: dict[str, float] = {"lambda": math.fsum(c.schedule.lambda_value for c in constraints)}
    for constraint, cost, stats in zip(constraints, mean_costs, schedule_stats, strict=True):
        name = constraint.name
        out[f"cost/{name}"] = cost
        out[f"lambda/{name}"] = constraint.schedule.lambda_value
        out |= {f"{k}/{name}": v for k, v in stats.items() if k != "lambda"}
    return out


def shown_keys(constraints: Sequence[Constraint]) -> tuple[str, ...]:
    """The progress bar's keys: reward, and each constraint's cost and λ."""
    if len(constraints) == 1:
        return ("reward", "cost", "lambda")
    names = [c.name for c in constraints]
    return ("reward", *(f"cost/{n}" for n in names), *(f"lambda/{n}" for n in names))


def schedules_state(constraints: Sequence[Constraint]) -> dict[str, Any]:
    """Each schedule's state and type, by constraint name (for checkpoints)."""
    return {
        c.name: {"type": type(c.schedule).__name__, "state": c.schedule.state_dict()}
        for c in constraints
    }
