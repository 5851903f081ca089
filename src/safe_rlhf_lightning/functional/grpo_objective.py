"""Loss pieces of the critic-free policy update (GRPO, Dr. GRPO, RLOO with clipping).

With the ``grpo`` or ``rloo`` advantage estimator (``group_advantages.py``) there is no critic.
GRPO (Shao et al. 2024, DeepSeekMath, Eq. 3) puts the KL to the reference policy into the loss,
as the k3 estimator (Eq. 4), beside PPO's clipped surrogate, instead of into the reward. (RLOO as
published, Ahmadian et al. 2024, penalises the sequence's KL in its score instead:
``group_advantages.kl_penalized_scores`` with ``kl_coef = 0`` here.) The two aggregations
differ in how tokens are weighted:

- GRPO: mean over each response's tokens, then over responses (``ppo.sequence_masked_mean``), so
  a token of a long response weighs less than one of a short response;
- Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): each response's token sum
  divided by one constant, the generation budget, then the mean over responses
  (``fixed_length_token_sum``), which removes that length bias.

Shapes: B responses, T response positions; ``mask`` (B, T) is True on generated tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .masking import masked_mean, masked_sum
from .ppo import sequence_masked_mean


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(π || π_ref) on tokens sampled from π (Schulman 2020,
    "Approximating KL Divergence"; the D_KL of DeepSeekMath Eq. 4)::

        k3 = exp(ref_logprobs - logprobs) - (ref_logprobs - logprobs) - 1

    Unbiased and never negative (e^x >= 1 + x). Computed as ``expm1(x) - x``: the same value, but
    ``exp(x) - 1`` in float32 loses all precision when π and π_ref are close (x ~ 1e-4).

    Args:
        logprobs, ref_logprobs: (B, T) log-probabilities of the sampled tokens under the policy
            (with gradient) and the frozen reference.

    Returns:
        (B, T), also outside any mask (the caller's aggregation masks it).
    """
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def k3_kl_loss(
    logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, *, kl_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """``kl_coef`` times the k3 KL, averaged over each response's tokens and then over responses
    (GRPO's aggregation, DeepSeekMath Eq. 3). The reference log-probs get no gradient.

    Args:
        logprobs, ref_logprobs: (B, T); mask: (B, T) bool.

    Stats: ``loss`` and ``kl`` (the aggregated k3 before the coefficient).
    """
    kl = sequence_masked_mean(k3_kl(logprobs, ref_logprobs.detach()), mask)
    loss = kl_coef * kl
    return loss, {"loss": loss.detach(), "kl": kl.detach()}


def fixed_length_token_sum(values: Tensor, mask: Tensor, *, max_length: int) -> Tensor:
    """Dr. GRPO's aggregation: ``(1 / B) Σ_i (1 / max_length) Σ_t values[i, t]`` over valid tokens.

    Its reference implementation divides each response's token sum by the generation budget
    instead of by the response's own length (Liu et al. 2025), so every token weighs the same
    whatever the length of its response, and the scale does not depend on the batch's lengths.

    Args:
        values: (B, T) per-token losses; mask: (B, T) bool.
        max_length: the constant, normally the maximum number of generated tokens (>= 1).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")
    return masked_sum(values, mask) / (mask.shape[0] * max_length)


def clipped_surrogate(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, *, clip_range: float
) -> Tensor:
    """PPO's clipped surrogate per token, negated to be minimised (Schulman et al. 2017, Eq. 7)::

        -min(r·A, clip(r, 1 - ε, 1 + ε)·A),  r = exp(logprobs - old_logprobs)

    The per-token form of ``ppo.ppo_actor_loss``, for aggregations other than its sequence mean.

    Args:
        logprobs: (B, T) with gradient; old_logprobs: (B, T) at rollout time; advantages: (B, T)
            detached (e.g. ``token_advantages`` of group advantages).

    Returns:
        (B, T), unmasked.
    """
    ratio = (logprobs - old_logprobs).exp()
    surrogate = advantages * ratio
    clipped = advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    return -torch.minimum(surrogate, clipped)


def group_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_range: float,
    kl_coef: float,
    max_length: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The critic-free actor loss: per token ``clipped_surrogate + kl_coef * k3_kl``, aggregated
    as GRPO does (``max_length=None``: DeepSeekMath Eq. 3, negated) or as Dr. GRPO does
    (``max_length`` = the generation budget).

    Args:
        logprobs: (B, T) with gradient; old_logprobs, ref_logprobs: (B, T) at rollout time and
            under the frozen reference; advantages: (B, T) detached; mask: (B, T) bool.

    Stats: ``loss``; ``clip_fraction`` and ``approx_kl`` (of the update, as ``ppo_actor_loss``);
    ``kl`` (the k3 KL to the reference, per-response mean then batch mean, for logging).
    """
    kl = k3_kl(logprobs, ref_logprobs.detach())  # (B, T)
    per_token = clipped_surrogate(logprobs, old_logprobs, advantages, clip_range=clip_range)
    per_token = per_token + kl_coef * kl
    if max_length is None:
        loss = sequence_masked_mean(per_token, mask)
    else:
        loss = fixed_length_token_sum(per_token, mask, max_length=max_length)
    with torch.no_grad():
        log_ratio = logprobs - old_logprobs
        clip_fraction = masked_mean(((log_ratio.exp() - 1.0).abs() > clip_range).float(), mask)
        approx_kl = masked_mean(log_ratio.exp() - 1.0 - log_ratio, mask)
        stats = {"loss": loss.detach(), "clip_fraction": clip_fraction, "approx_kl": approx_kl}
        stats["kl"] = sequence_masked_mean(kl, mask)
    return loss, stats
