"""The advantage estimator of PPO-Lagrangian (the ``advantage`` group): from a rollout to the
actor's per-token advantage, and the actor's loss on a minibatch of it.

Interface (what ``PPOLagModule`` calls; everything else about a PPO step is the module's):

- :func:`estimate` (rollout, constraints, stage config) -> ``targets``, a dict of (B, T)
  tensors: always ``advantages`` (the mixed actor advantage, detached) and
  ``reward_with_kl_penalty`` (B,); with ``gae`` also ``rewards``/``reward_returns`` and, for
  each two-stream constraint ``<name>``, ``<name>_scores``/``<name>_returns`` (the critics'
  regression targets);
- :func:`actor_loss` (minibatch log-probs, rollout, targets, row index, config) -> the actor's
  ``(loss, stats)`` with stats ``actor_loss``, ``clip_fraction``, ``approx_kl`` (and ``kl``, the
  k3 term, when the KL is in the loss).

Every estimator keeps the streams and their mix ``(A_R - Σ_k λ_k·A_Ck) / (1 + Σ_k λ_k)``
(``functional.mix_constrained_advantages``; with one constraint ``mix_advantages`` bit for
bit): one cost stream per constraint with a two-stream schedule (``learned``, ``pid``); a
constraint with a one-stream schedule (``fixed``, ``none``) shapes the reward stream's score
instead, ``schedule.shaped_score(R, C_k)`` in the constraints' order. Group estimators need the
rollout's rows in groups of ``num_return_sequences`` consecutive responses to one prompt: see
:func:`group_ids`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..config import AdvantageEstimator, GRPOAdvantage, PPOLagStageConfig
from ..functional import (
    generalized_advantages,
    group_policy_loss,
    grpo_advantages,
    kl_penalized_scores,
    kl_shaped_scores,
    mix_constrained_advantages,
    ppo_actor_loss,
    rloo_advantages,
    token_advantages,
    whiten,
)
from ..rollout import Rollout
from .ppo_lag_constraints import Constraint


def group_ids(size: int, group_size: int, device=None) -> Tensor:
    """(size,) long: the prompt of each rollout row, ``[0]*k + [1]*k + ...`` with k =
    ``group_size``.

    ``rollout.sample`` repeats each prompt k times consecutively (``repeat_interleave``) and
    generates the B·k responses in one call, so rows i·k .. i·k + k - 1 answer prompt i. Under
    DDP, Lightning replaces the prompt loader's sampler with a DistributedSampler over prompts,
    so each rank receives whole prompts and samples their k responses itself: a group is
    generated, scored and given advantages on the one rank that holds its prompt, never split
    across ranks, and the ids need only be unique within a rank. (λ is the one quantity shared
    across ranks: its episode costs are all-gathered.)
    """
    if size % group_size:
        raise ValueError(f"{size} rollout rows are not groups of {group_size} responses")
    return torch.arange(size // group_size, device=device).repeat_interleave(group_size)


def estimate(
    estimator: AdvantageEstimator,
    rollout: Rollout,
    constraints: Sequence[Constraint],
    config: PPOLagStageConfig,
) -> dict[str, Tensor]:
    """The targets of one rollout (see the module docstring); ``rollout.cost`` has one row per
    constraint, ``rollout.cost_values`` one tensor per two-stream constraint."""
    if estimator.critics:
        return _gae_targets(rollout, constraints, config)
    return _group_targets(estimator, rollout, constraints, config)


def shaped_reward(rollout: Rollout, constraints: Sequence[Constraint]) -> Tensor:
    """(B,) the reward stream's end score: R shaped by each one-stream constraint in order."""
    reward = rollout.reward
    for index, constraint in enumerate(constraints):
        if not constraint.two_streams:
            reward = constraint.schedule.shaped_score(reward, rollout.cost[index])
    return reward


def _cost_streams(constraints: Sequence[Constraint]) -> list[tuple[int, Constraint]]:
    """(row of ``rollout.cost``, constraint) of each two-stream constraint, in order."""
    return [(k, c) for k, c in enumerate(constraints) if c.two_streams]


def _gae_targets(
    rollout: Rollout, constraints: Sequence[Constraint], hp: PPOLagStageConfig
) -> dict[str, Tensor]:
    """Per-token scores, GAE advantages and returns of each stream; the actor's advantage."""
    mask = rollout.response_mask
    gae = {"gamma": hp.gamma, "gae_lambda": hp.gae_lambda}
    end_reward = shaped_reward(rollout, constraints)
    rewards = kl_shaped_scores(
        end_reward,
        rollout.logprobs,
        rollout.ref_logprobs,
        mask,
        kl_weight=-hp.kl_coef,
        clip_range_score=hp.clip_range_score,
    )
    reward_gae = generalized_advantages(rollout.reward_values, rewards, mask, **gae)
    targets = {"rewards": rewards, "reward_returns": reward_gae.returns}
    targets["reward_with_kl_penalty"] = rewards.sum(-1)
    reward_advantages = reward_gae.advantages
    if hp.whiten_advantages:
        reward_advantages = whiten(reward_advantages, mask)
    streams = _cost_streams(constraints)
    cost_advantages = []
    for stream, (row, constraint) in enumerate(streams):
        costs = kl_shaped_scores(
            rollout.cost[row],
            rollout.logprobs,
            rollout.ref_logprobs,
            mask,
            kl_weight=hp.kl_coef,
            clip_range_score=hp.clip_range_score,
        )
        cost_gae = generalized_advantages(rollout.cost_values[stream], costs, mask, **gae)
        cost_advantages.append(
            whiten(cost_gae.advantages, mask) if hp.whiten_advantages else cost_gae.advantages
        )
        targets[f"{constraint.name}_scores"] = costs
        targets[f"{constraint.name}_returns"] = cost_gae.returns
    lambdas = [constraint.schedule.lambda_value for _, constraint in streams]
    targets["advantages"] = mix_constrained_advantages(reward_advantages, cost_advantages, lambdas)
    return targets


def _group_targets(
    estimator: AdvantageEstimator,
    rollout: Rollout,
    constraints: Sequence[Constraint],
    hp: PPOLagStageConfig,
) -> dict[str, Tensor]:
    """Per-stream group advantages of the end scores (KL folded in when ``kl_penalty`` is
    ``reward``; not clipped to ``clip_range_score``, which bounds per-token scores), spread over
    each response's tokens and mixed with λ."""
    mask = rollout.response_mask
    groups = group_ids(mask.shape[0], hp.num_return_sequences, mask.device)
    kl_coef = hp.kl_coef if estimator.kl_penalty == "reward" else 0.0

    def stream(end_score: Tensor, kl_sign: float) -> tuple[Tensor, Tensor]:
        """(B,) score of the stream and (B, T) advantages."""
        score = kl_penalized_scores(
            end_score, rollout.logprobs, rollout.ref_logprobs, mask, kl_weight=kl_sign * kl_coef
        )
        if isinstance(estimator, GRPOAdvantage):
            advantages = grpo_advantages(
                score, groups, scale_by_std=estimator.scale_by_std, eps=estimator.eps
            )
        else:
            advantages = rloo_advantages(score, groups)
        advantages = token_advantages(advantages, mask)  # (B, T)
        return score, whiten(advantages, mask) if hp.whiten_advantages else advantages

    end_reward = shaped_reward(rollout, constraints)
    _, reward_advantages = stream(end_reward, -1.0)
    # Logged as with GAE: the reward stream's score with its KL penalty, wherever the KL goes.
    targets = {
        "reward_with_kl_penalty": kl_penalized_scores(
            end_reward, rollout.logprobs, rollout.ref_logprobs, mask, kl_weight=-hp.kl_coef
        )
    }
    streams = _cost_streams(constraints)
    cost_advantages = [stream(rollout.cost[row], 1.0)[1] for row, _ in streams]
    lambdas = [constraint.schedule.lambda_value for _, constraint in streams]
    targets["advantages"] = mix_constrained_advantages(reward_advantages, cost_advantages, lambdas)
    return targets


def actor_loss(
    estimator: AdvantageEstimator,
    logprobs: Tensor,
    rollout: Rollout,
    targets: dict[str, Tensor],
    index: Tensor,
    config: PPOLagStageConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The actor's loss on rollout rows ``index`` (``logprobs`` (b, T): the actor's, with
    gradient, on those rows): PPO's clipped surrogate for ``gae`` (``ppo_actor_loss``); for
    group estimators the same surrogate aggregated as ``estimator.aggregation`` says, plus
    β times the k3 KL when ``kl_penalty`` is ``loss`` (``group_policy_loss``)."""
    old_logprobs, advantages = rollout.logprobs[index], targets["advantages"][index]
    response_mask = rollout.response_mask[index]
    if estimator.critics:
        loss, stats = ppo_actor_loss(
            logprobs, old_logprobs, advantages, response_mask, clip_range=config.clip_range
        )
    else:
        loss, stats = group_policy_loss(
            logprobs,
            old_logprobs,
            rollout.ref_logprobs[index],
            advantages,
            response_mask,
            clip_range=config.clip_range,
            kl_coef=config.kl_coef if estimator.kl_penalty == "loss" else 0.0,
            max_length=config.max_new_tokens if estimator.aggregation == "budget" else None,
        )
    named = {"actor_loss": stats["loss"]} | {k: v for k, v in stats.items() if k != "loss"}
    if not estimator.critics and estimator.kl_penalty != "loss":
        named.pop("kl")  # not part of the loss: the step's kl_divergence already reports it
    return loss, named
