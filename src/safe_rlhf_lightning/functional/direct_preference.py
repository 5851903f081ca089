"""RL-free preference losses on log-probabilities: DPO (and cDPO), IPO, KTO, and C-DPO's labels.

These are the losses of the RL-free stages (DESIGN.md §6). They read the same preference schema
as the reward and cost models: a DPO stage on the "better" labels aligns for helpfulness; on the
"safer" labels with β/λ it is SACPO's safety step (Wachi et al. 2024), whose two models
``merge.merge_state_dicts`` then combines (P-SACPO). C-DPO (Liu et al. 2024) instead relabels the
pairs by ``R - λ·C`` with a learned R and C (``constrained_preference``) and runs DPO on them,
updating λ with the same schedules as PPO-Lagrangian.

Inputs are per-sequence log-probabilities, shape (B,): the sum over each response's tokens of
``gather_logprobs`` (``masked_sum(token_logprobs, mask, dim=-1)``), under the policy being trained
(with gradient) and under the frozen reference policy (detached here). ``chosen`` is the preferred
response y_w of a pair, ``rejected`` the other, y_l.

Implicit reward (Rafailov et al. 2023, Eq. 5, less a term in x alone):
r(x, y) = β·log(π(y|x) / π_ref(y|x)). The stats ``chosen_reward``, ``rejected_reward`` (batch
means), ``reward_margin`` (mean of chosen minus rejected) and ``accuracy`` (fraction with a
positive margin) use it, as TRL logs them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .masking import masked_mean


def _logratios(
    chosen_logprobs: Tensor,
    rejected_logprobs: Tensor,
    ref_chosen_logprobs: Tensor,
    ref_rejected_logprobs: Tensor,
) -> tuple[Tensor, Tensor]:
    """Log-ratios log π/π_ref of the chosen and the rejected responses, each (B,)."""
    return (
        chosen_logprobs - ref_chosen_logprobs.detach(),
        rejected_logprobs - ref_rejected_logprobs.detach(),
    )


def _pair_stats(
    loss: Tensor, chosen_logratio: Tensor, rejected_logratio: Tensor, beta: float
) -> dict[str, Tensor]:
    chosen = beta * chosen_logratio.detach().float()  # (B,) implicit rewards
    rejected = beta * rejected_logratio.detach().float()
    margin = chosen - rejected
    return {
        "loss": loss.detach(),
        "accuracy": (margin > 0).float().mean(),
        "chosen_reward": chosen.mean(),
        "rejected_reward": rejected.mean(),
        "reward_margin": margin.mean(),
    }


def dpo_loss(
    chosen_logprobs: Tensor,
    rejected_logprobs: Tensor,
    ref_chosen_logprobs: Tensor,
    ref_rejected_logprobs: Tensor,
    *,
    beta: float,
    label_smoothing: float | Tensor = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """DPO (Rafailov et al. 2023, Eq. 7), with cDPO's label smoothing (Mitchell 2023, "A note on
    DPO with noisy preferences and relationship to IPO")::

        h = log(π(y_w)/π_ref(y_w)) - log(π(y_l)/π_ref(y_l))
        L = -(1 - ε)·log σ(β·h) - ε·log σ(-β·h)

    ε is the assumed probability that a label is flipped; ε = 0 is plain DPO. Batch mean.

    Args:
        chosen_logprobs, rejected_logprobs: (B,) summed log-probs under the policy.
        ref_chosen_logprobs, ref_rejected_logprobs: (B,) the same under the reference.
        beta: β > 0, the strength of the KL regularisation (smaller: further from π_ref).
        label_smoothing: ε in [0, 0.5), or (B,) per-pair values: a soft label p = 1 - ε, such
            as Bradley–Terry's σ(margin) of ``constrained_preference``.
    """
    chosen, rejected = _logratios(
        chosen_logprobs, rejected_logprobs, ref_chosen_logprobs, ref_rejected_logprobs
    )
    logits = beta * (chosen - rejected)  # (B,)
    eps = label_smoothing
    losses = -(1.0 - eps) * F.logsigmoid(logits) - eps * F.logsigmoid(-logits)  # (B,)
    loss = losses.mean()
    return loss, _pair_stats(loss, chosen, rejected, beta)


def ipo_loss(
    chosen_logprobs: Tensor,
    rejected_logprobs: Tensor,
    ref_chosen_logprobs: Tensor,
    ref_rejected_logprobs: Tensor,
    *,
    beta: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences"), with β playing the role of their τ::

        L = (h - 1 / (2β))^2,  h as in ``dpo_loss``

    Unlike DPO's log σ, the square stops pushing once the margin reaches 1/(2β), so the policy
    stays near π_ref even when the preferences are deterministic. Batch mean. (TRL feeds IPO
    length-averaged log-probs; that choice is the caller's: pass means instead of sums.)
    """
    chosen, rejected = _logratios(
        chosen_logprobs, rejected_logprobs, ref_chosen_logprobs, ref_rejected_logprobs
    )
    loss = (chosen - rejected - 1.0 / (2.0 * beta)).square().mean()
    return loss, _pair_stats(loss, chosen, rejected, beta)


def kto_reference_point(mismatched_logprobs: Tensor, ref_mismatched_logprobs: Tensor) -> Tensor:
    """KTO's reference point z_0 = max(0, mean log(π(y'|x) / π_ref(y'|x))), detached.

    KTO (Ethayarajh et al. 2024) estimates KL(π || π_ref) from mismatched pairs: each
    prompt x with another example's response y' in the batch. No gradient flows through it.

    Args:
        mismatched_logprobs, ref_mismatched_logprobs: (M,) summed log-probs of the mismatched
            pairs under the policy and the reference.

    Returns:
        0-d tensor >= 0.
    """
    return (mismatched_logprobs - ref_mismatched_logprobs).detach().mean().clamp(min=0)


def kto_loss(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    desirable: Tensor,
    reference_point: Tensor,
    *,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization")
    on unpaired examples, each desirable or not::

        r = log(π(y|x) / π_ref(y|x)),  z_0 = ``reference_point`` (detached)
        v = λ_D·σ(β(r - z_0)) if desirable,  λ_U·σ(β(z_0 - r)) otherwise
        L = mean over examples of (λ_y - v)

    computed as λ_D·σ(β(z_0 - r)) and λ_U·σ(β(r - z_0)): 1 - σ(a) = σ(-a), without cancellation.

    The paper advises λ_D·n_D / (λ_U·n_U) in [1, 4/3] for n_D desirable and n_U undesirable
    examples.

    Args:
        logprobs, ref_logprobs: (B,) summed log-probs under the policy and the reference.
        desirable: (B,) bool.
        reference_point: 0-d tensor, z_0 from ``kto_reference_point``.
        beta: β > 0; desirable_weight, undesirable_weight: λ_D, λ_U.

    Stats: ``loss``, ``chosen_reward`` and ``rejected_reward`` (mean β·r over the desirable and
    the undesirable examples; 0 when there are none), ``reward_margin`` (their difference) and
    ``reference_point``.
    """
    logratio = logprobs - ref_logprobs.detach()  # (B,)
    z0 = reference_point.detach()
    losses = torch.where(  # (B,) λ_y - v
        desirable,
        desirable_weight * torch.sigmoid(beta * (z0 - logratio)),
        undesirable_weight * torch.sigmoid(beta * (logratio - z0)),
    )
    loss = losses.mean()
    rewards = beta * logratio.detach().float()
    chosen, rejected = masked_mean(rewards, desirable), masked_mean(rewards, ~desirable)
    return loss, {
        "loss": loss.detach(),
        "chosen_reward": chosen,
        "rejected_reward": rejected,
        "reward_margin": chosen - rejected,
        "reference_point": z0.float(),
    }


class ConstrainedPreference(NamedTuple):
    """Which response of each pair C-DPO prefers; see :func:`constrained_preference`."""

    first_preferred: Tensor  # (B,) bool: response 0 is chosen (False on ties)
    tie: Tensor  # (B,) bool: no preference; such pairs carry no DPO signal and are dropped
    margin: Tensor  # (B,) (R_0 - λ·C_0) - (R_1 - λ·C_1)


def constrained_preference(
    reward_0: Tensor,
    cost_0: Tensor,
    reward_1: Tensor,
    cost_1: Tensor,
    lambda_value: float,
    *,
    tie_tolerance: float = 0.0,
) -> ConstrainedPreference:
    """C-DPO's preference labels (Liu et al. 2024, "Enhancing LLM Safety via Constrained Direct
    Preference Optimization"): the response with the higher ``R - λ·C`` is chosen.

    ``R - λ·C`` is the Lagrangian's reward for a fixed λ (cost C > 0 unsafe, so cost lowers it);
    C-DPO runs DPO on these labels and moves λ by dual ascent between rounds. Under
    Bradley–Terry, ``σ(margin)`` is the probability that response 0 is preferred: a stage that
    wants soft labels passes ``label_smoothing = 1 - σ(|margin|)`` to ``dpo_loss`` with the
    pair ordered by ``first_preferred``.

    Args:
        reward_0, cost_0, reward_1, cost_1: (B,) scores of the two responses of each pair.
        lambda_value: λ >= 0, a number.
        tie_tolerance: pairs with |margin| <= this are ties (0: exactly equal scores only).
    """
    margin = (reward_0 - lambda_value * cost_0) - (reward_1 - lambda_value * cost_1)
    tie = margin.abs() <= tie_tolerance
    return ConstrainedPreference(first_preferred=(margin > 0) & ~tie, tie=tie, margin=margin)


def best_and_worst(scores: Tensor, group_size: int) -> tuple[Tensor, Tensor]:
    """Row indices of the best and the worst response of each prompt's group.

    Args:
        scores: (B·k,) one score per response, each prompt's k = ``group_size`` responses in
            adjacent rows (as ``rollout.sample`` returns them), e.g. C-DPO's ``R - λ·C``.

    Returns:
        (B,) and (B,) indices into the B·k rows: the highest and the lowest score of each
        group (the first one on equal scores; equal everywhere gives the same row twice).
    """
    groups = scores.view(-1, group_size)  # (B, k)
    start = torch.arange(groups.shape[0], device=scores.device) * group_size
    return start + groups.argmax(dim=-1), start + groups.argmin(dim=-1)
