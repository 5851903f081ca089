"""The PPO-Lagrangian math of Safe RLHF (Dai et al. 2023, Sec. 3.3 and App. B), as pure functions.

Shapes: B rollouts, T response positions. Position ``t`` holds the log-probability of the t-th
generated token, the critics' value of the state before it, and its per-token reward and cost.
``mask`` (B, T) is True on generated tokens up to and including each row's EOS.

Conventions shared with upstream PKU-Alignment/safe-rlhf (``safe_rlhf/algorithms/ppo_lag``):
the KL estimate is ``logprobs - ref_logprobs``; the reward stream gets ``-kl_coef * KL`` per token
and the cost stream ``+kl_coef * KL``, so the mixed advantage ``(A_R - λ·A_C) / (1 + λ)`` carries a
KL weight of exactly ``kl_coef`` whatever λ is; losses average over each sequence's tokens first
and then over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .masking import masked_mean


def sequence_masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over each row's valid tokens, then over rows (upstream's ``masked_mean``).

    Args:
        values: (B, T); mask: (B, T) bool. Rows count equally whatever their length; a row
            without any valid token contributes 0.
    """
    return masked_mean(values, mask, dim=-1).mean()


def last_token_index(mask: Tensor) -> Tensor:
    """(B,) long: the position of each row's last True entry of ``mask`` (B, T); 0 for none."""
    positions = torch.arange(mask.shape[-1], device=mask.device)
    return torch.where(mask, positions, torch.zeros_like(positions)).amax(dim=-1)


def kl_shaped_scores(
    end_score: Tensor,
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    *,
    kl_weight: float,
    clip_range_score: float,
) -> Tensor:
    """Per-token scores of one stream: ``kl_weight * KL`` on every token, the end score added at
    the last response token, all clipped to ±clip_range_score.

    Use ``kl_weight = -kl_coef`` for the reward stream and ``+kl_coef`` for the cost stream.

    Args:
        end_score: (B,) the reward model's (or cost model's) score of each whole response.
        logprobs, ref_logprobs: (B, T) of the generated tokens under the actor at rollout time
            and under the frozen reference policy.
        mask: (B, T) bool.

    Returns:
        (B, T), zero outside ``mask``.
    """
    kl = logprobs - ref_logprobs
    scores = kl_weight * kl
    last = last_token_index(mask).unsqueeze(-1)  # (B, 1)
    scores = scores.scatter_add(-1, last, end_score.to(scores.dtype).unsqueeze(-1))
    scores = scores.clamp(-clip_range_score, clip_range_score)
    return torch.where(mask, scores, torch.zeros_like(scores))


class AdvantagesAndReturns(NamedTuple):
    advantages: Tensor  # (B, T), detached, zero outside the mask
    returns: Tensor  # (B, T), detached: the critic's regression target


def generalized_advantages(
    values: Tensor, scores: Tensor, mask: Tensor, *, gamma: float, gae_lambda: float
) -> AdvantagesAndReturns:
    """Generalized Advantage Estimation (Schulman et al. 2016, Eq. 16) over the response tokens.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` with ``V`` = 0 after the last token, and
    ``A_t = delta_t + gamma * gae_lambda * A_{t+1}``; returns are ``A_t + V_t``. With
    ``gamma = gae_lambda = 1`` the returns are the reward-to-go.

    Args:
        values: (B, T) critic values of the states before each generated token (at rollout time).
        scores: (B, T) per-token rewards (or costs) from ``kl_shaped_scores``.
        mask: (B, T) bool; rows are right padded (valid tokens first).
    """
    values = torch.where(mask, values, torch.zeros_like(values)).detach()
    scores = torch.where(mask, scores, torch.zeros_like(scores)).detach()
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=-1)
    deltas = scores + gamma * next_values - values  # (B, T); 0 after the last token
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[-1])):
        running = deltas[:, t] + gamma * gae_lambda * running
        advantages[:, t] = running
    advantages = torch.where(mask, advantages, torch.zeros_like(advantages))
    return AdvantagesAndReturns(advantages, advantages + values)


def mix_advantages(
    reward_advantages: Tensor, cost_advantages: Tensor, lambda_value: float
) -> Tensor:
    """The Lagrangian's actor advantage ``(A_R - λ·A_C) / (1 + λ)`` (Dai et al. 2023, Eq. 31).

    λ is a number (detached from its own optimisation); dividing by ``1 + λ`` keeps the scale of
    the policy gradient independent of λ (upstream's choice).
    """
    return (reward_advantages - lambda_value * cost_advantages) / (1.0 + lambda_value)


def mix_constrained_advantages(
    reward_advantages: Tensor,
    cost_advantages: Tensor | Sequence[Tensor],
    lambda_values: Sequence[float],
) -> Tensor:
    """The actor advantage under K constraints, ``(A_R - Σ_k λ_k·A_Ck) / (1 + Σ_k λ_k)``.

    The Lagrangian with one multiplier per constraint (DESIGN.md §6), normalised like
    ``mix_advantages`` so that the policy gradient's scale does not grow with the multipliers.
    With K = 1 it performs the same operations in the same order as ``mix_advantages`` and so
    equals it bit for bit; K = 0 gives A_R (reward-only PPO).

    Args:
        reward_advantages: (B, T) (any shape S).
        cost_advantages: (K, B, T), or K tensors of shape S: one stream per constraint.
        lambda_values: K numbers λ_k >= 0, detached; Python floats keep the K = 1 case exact.

    Raises ValueError when the numbers of cost streams and multipliers differ.
    """
    if len(cost_advantages) != len(lambda_values):
        raise ValueError(
            f"{len(cost_advantages)} cost advantage streams but {len(lambda_values)} multipliers."
        )
    if len(lambda_values) == 0:
        return reward_advantages / 1.0
    penalty = lambda_values[0] * cost_advantages[0]
    for lambda_value, advantages in zip(lambda_values[1:], cost_advantages[1:], strict=True):
        penalty = penalty + lambda_value * advantages
    return (reward_advantages - penalty) / (1.0 + sum(lambda_values))


def whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Shift and scale ``values`` to mean 0, std 1 over the valid tokens of the batch."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    return torch.where(mask, whitened, torch.zeros_like(whitened))


def ppo_actor_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, *, clip_range: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017, Eq. 7), negated to be minimised.

    Args:
        logprobs: (B, T) of the generated tokens under the actor being trained (with gradient).
        old_logprobs: (B, T) the same at rollout time.
        advantages: (B, T) detached.
        mask: (B, T) bool.

    Stats: ``clip_fraction`` (share of tokens whose ratio left [1 - eps, 1 + eps]) and
    ``approx_kl`` (the unbiased low-variance estimator ``(r - 1) - log r`` of KL(old || new)).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    surrogate = advantages * ratio
    clipped = advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = -sequence_masked_mean(torch.minimum(surrogate, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip_range).float(), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, {"loss": loss.detach(), "clip_fraction": clip_fraction, "approx_kl": approx_kl}


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *, clip_range_value: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic's loss ``0.5 * max((V - R)^2, (clip(V, V_old ± eps) - R)^2)`` (upstream's).

    Args:
        values: (B, T) with gradient; old_values: (B, T) at rollout time; returns: (B, T).
    """
    clipped = torch.maximum(
        torch.minimum(values, old_values + clip_range_value), old_values - clip_range_value
    )
    losses = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    loss = 0.5 * sequence_masked_mean(losses, mask)
    return loss, {"loss": loss.detach()}


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """``1 - Var[R - V] / Var[R]`` over valid tokens: 1 is a perfect critic, <= 0 a useless one."""
    returns_mean = masked_mean(returns, mask)
    residual = returns - values
    residual_mean = masked_mean(residual, mask)
    return 1.0 - masked_mean((residual - residual_mean) ** 2, mask) / masked_mean(
        (returns - returns_mean) ** 2, mask
    ).clamp(min=1e-8)
