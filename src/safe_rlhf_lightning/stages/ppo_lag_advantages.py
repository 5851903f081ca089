"""The advantage estimator of PPO-Lagrangian (the ``advantage`` group): from a rollout to the
actor's per-token advantage, and the actor's loss on a minibatch of it.

Interface (what ``PPOLagModule`` calls; everything else about a PPO step is the module's):

- :func:`estimate` (rollout, λ schedule, stage config) -> ``targets``, a dict of (B, T)
  tensors: always ``advantages`` (the mixed actor advantage, detached) and
  ``reward_with_kl_penalty`` (B,); with ``gae`` also ``rewards``/``reward_returns`` and, for
  two-stream schedules, ``costs``/``cost_returns`` (the critics' regression targets);
- :func:`actor_loss` (minibatch log-probs, rollout, targets, row index, config) -> the actor's
  ``(loss, stats)`` with stats ``actor_loss``, ``clip_fraction``, ``approx_kl`` (and ``kl``, the
  k3 term, when the KL is in the loss).

Every estimator keeps the two streams and their mix ``(A_R - λ·A_C) / (1 + λ)``
(``functional.mix_advantages``); one-stream schedules (``fixed``, ``none``) estimate one stream
on ``schedule.shaped_score(R, C)``. Group estimators need the rollout's rows in groups of
``num_return_sequences`` consecutive responses to one prompt: see :func:`group_ids`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import AdvantageEstimator, GRPOAdvantage, PPOLagStageConfig
from ..functional import (
    generalized_advantages,
    group_policy_loss,
    grpo_advantages,
    kl_penalized_scores,
    kl_shaped_scores,
    mix_advantages,
    ppo_actor_loss,
    rloo_advantages,
    token_advantages,
    whiten,
)
from ..lagrange import LambdaSchedule
from ..rollout import Rollout


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
    schedule: LambdaSchedule,
    config: PPOLagStageConfig,
) -> dict[str, Tensor]:
    """The targets of one rollout (see the module docstring)."""
    if estimator.critics:
        return _gae_targets(rollout, schedule, config)
    return _group_targets(estimator, rollout, schedule, config)


def _gae_targets(
    rollout: Rollout, schedule: LambdaSchedule, hp: PPOLagStageConfig
) -> dict[str, Tensor]:
    """Per-token scores, GAE advantages and returns of each stream; the actor's advantage."""
    mask = rollout.response_mask
    gae = {"gamma": hp.gamma, "gae_lambda": hp.gae_lambda}
    two = schedule.two_streams
    end_reward = rollout.reward if two else schedule.shaped_score(rollout.reward, rollout.cost)
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
    if not two:
        targets["advantages"] = reward_advantages
        return targets
    costs = kl_shaped_scores(
        rollout.cost,
        rollout.logprobs,
        rollout.ref_logprobs,
        mask,
        kl_weight=hp.kl_coef,
        clip_range_score=hp.clip_range_score,
    )
    cost_gae = generalized_advantages(rollout.cost_values, costs, mask, **gae)
    cost_advantages = (
        whiten(cost_gae.advantages, mask) if hp.whiten_advantages else cost_gae.advantages
    )
    targets |= {"costs": costs, "cost_returns": cost_gae.returns}
    targets["advantages"] = mix_advantages(
        reward_advantages, cost_advantages, schedule.lambda_value
    )
    return targets


def _group_targets(
    estimator: AdvantageEstimator,
    rollout: Rollout,
    schedule: LambdaSchedule,
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

    two = schedule.two_streams
    end_reward = rollout.reward if two else schedule.shaped_score(rollout.reward, rollout.cost)
    _, reward_advantages = stream(end_reward, -1.0)
    # Logged as with GAE: the reward stream's score with its KL penalty, wherever the KL goes.
    targets = {
        "reward_with_kl_penalty": kl_penalized_scores(
            end_reward, rollout.logprobs, rollout.ref_logprobs, mask, kl_weight=-hp.kl_coef
        )
    }
    if not two:
        return targets | {"advantages": reward_advantages}
    _, cost_advantages = stream(rollout.cost, 1.0)
    targets["advantages"] = mix_advantages(
        reward_advantages, cost_advantages, schedule.lambda_value
    )
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
