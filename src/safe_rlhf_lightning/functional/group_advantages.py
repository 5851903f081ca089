"""Critic-free advantages: each response is judged against the other responses to its prompt.

These are the ``grpo`` and ``rloo`` choices of the advantage estimator (DESIGN.md §6), beside
``gae`` (``ppo.generalized_advantages``, which needs critics). Each stream gets its own
advantages from its own end scores, the reward and every cost alike, and the streams are then
mixed as with GAE (``ppo.mix_advantages``, ``ppo.mix_constrained_advantages``).

Shapes: N responses (the rollout batch), several per prompt. ``group_ids`` (N,) long names each
response's prompt. Groups may differ in size (ragged), e.g. after a rollout with a non-finite
score was dropped, and need be neither contiguous nor sorted. Scores must be finite.

Both estimators are called as ``estimator(scores, group_ids) -> (N,)``, so a Hydra choice can
instantiate either one as a partial (``_target_: safe_rlhf_lightning.functional.grpo_advantages``,
``_partial_: true``, ``scale_by_std: false`` for Dr. GRPO) and the stage calls whichever it got;
``token_advantages`` then spreads each response's advantage over its tokens.

A group whose scores are all equal gets advantage exactly 0 (no NaN): scores are shifted by their
group's maximum first, which is exact for equal scores, so the centred values are exact zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .masking import masked_sum


def _membership(index: Tensor, num_groups: int) -> Tensor:
    """(N,) group indices in [0, G) -> (G, N) bool, row g True on the responses of group g."""
    return index == torch.arange(num_groups, device=index.device).unsqueeze(-1)


def _group_sum(values: Tensor, index: Tensor, num_groups: int) -> Tensor:
    """(N,) values and (N,) group indices -> (G,) per-group sums.

    One masked row sum per group rather than ``index_add``: a fixed summation order, so the same
    advantages on every run and device (``index_add`` accumulates atomically on GPU).
    """
    member = _membership(index, num_groups)  # (G, N)
    return torch.where(member, values, values.new_zeros(())).sum(dim=-1)


def _shift_by_group_max(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scores minus their group's max (N,), each response's group index (N,) in [0, G), and the
    group sizes (G,). The shift cancels in every estimator and makes equal scores exact zeros."""
    # torch.unique maps arbitrary ids to 0..G-1 (a host sync for G, once per rollout batch).
    _, index, sizes = torch.unique(group_ids, return_inverse=True, return_counts=True)
    member = _membership(index, sizes.shape[0])  # (G, N)
    group_max = torch.where(member, scores, scores.new_full((), -torch.inf)).amax(dim=-1)
    return scores - group_max[index], index, sizes


def grpo_advantages(
    scores: Tensor, group_ids: Tensor, *, scale_by_std: bool = True, eps: float = 1e-6
) -> Tensor:
    """Group-relative advantages of GRPO (Shao et al. 2024, DeepSeekMath, Sec. 4.1.2)::

        A_i = (s_i - mean_g(s)) / (std_g(s) + eps)

    over the responses of response i's group g. ``std_g`` is the sample standard deviation with
    Bessel's correction (n - 1), as TRL's and verl's GRPO compute it; a group of one has std 0.
    ``scale_by_std=False`` gives Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like
    Training"): ``A_i = s_i - mean_g(s)``, since dividing by the std up-weights prompts whose
    responses barely differ (too easy or too hard).

    Args:
        scores: (N,) end scores of one stream (reward, or one cost).
        group_ids: (N,) long, the prompt each response answers.
        scale_by_std: divide by the group's std (GRPO) or not (Dr. GRPO).
        eps: added to the std, bounding the advantages of a group whose scores nearly agree
            (a group whose scores are equal gives 0 for any eps >= 0).

    Returns:
        (N,) detached advantages; 0 for every response of a group with equal scores.
    """
    shifted, index, sizes = _shift_by_group_max(scores.detach(), group_ids)
    num_groups, count = sizes.shape[0], sizes.to(scores.dtype)
    centered = shifted - (_group_sum(shifted, index, num_groups) / count)[index]
    if not scale_by_std:
        return centered
    std = (_group_sum(centered.square(), index, num_groups) / (count - 1).clamp(min=1)).sqrt()
    # A group with std 0 has centred scores exactly 0: divide them by 1 so eps = 0 gives no NaN.
    return centered / torch.where(std > 0, std + eps, torch.ones_like(std))[index]


def rloo_advantages(scores: Tensor, group_ids: Tensor) -> Tensor:
    """REINFORCE leave-one-out advantages (Ahmadian et al. 2024, "Back to Basics";
    Kool et al. 2019)::

        A_i = s_i - (1 / (k - 1)) Σ_{j in g, j != i} s_j

    with k the size of response i's group g: each response's baseline is the mean score of the
    other responses to its prompt, so it is independent of the response itself. A group of one
    has no other response and gets advantage 0.

    Args:
        scores: (N,) end scores of one stream (reward, or one cost).
        group_ids: (N,) long, the prompt each response answers.

    Returns:
        (N,) detached advantages.
    """
    shifted, index, sizes = _shift_by_group_max(scores.detach(), group_ids)
    others_sum = _group_sum(shifted, index, sizes.shape[0])[index] - shifted  # (N,)
    others_count = (sizes[index] - 1).clamp(min=1).to(scores.dtype)  # (N,); k = 1: sum is 0
    return shifted - others_sum / others_count


def kl_penalized_scores(
    end_score: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, *, kl_weight: float
) -> Tensor:
    """A response's score with its KL to the reference folded in, for the estimators above.

    ``end_score + kl_weight * Σ_t (logprobs - ref_logprobs)`` over the response's tokens: RLOO's
    KL-penalised sequence reward (Ahmadian et al. 2024), and the sum over tokens of what
    ``ppo.kl_shaped_scores`` gives without clipping. As there, ``kl_weight = -kl_coef`` for the
    reward stream and ``+kl_coef`` for each cost stream, so that the mixed advantage keeps a KL
    weight of ``kl_coef`` for every λ (exactly so with RLOO and Dr. GRPO, which are linear).

    Args:
        end_score: (N,) the reward model's (or a cost model's) score of each response.
        logprobs, ref_logprobs: (N, T) of the generated tokens under the actor at rollout time
            and under the frozen reference; mask: (N, T) bool.

    Returns:
        (N,) detached.
    """
    kl = masked_sum((logprobs - ref_logprobs).detach(), mask, dim=-1)  # (N,)
    return end_score.detach() + kl_weight * kl


def token_advantages(advantages: Tensor, mask: Tensor) -> Tensor:
    """Give every valid token of a response its response's advantage (outcome supervision:
    DeepSeekMath Sec. 4.1.2 sets Â_{i,t} = Ã_i for all t).

    Args:
        advantages: (N,) per-response advantages.
        mask: (N, T) bool, True on the response's generated tokens.

    Returns:
        (N, T), zero outside ``mask``.
    """
    return torch.where(mask, advantages.unsqueeze(-1), advantages.new_zeros(()))
