"""Preference-model losses of Safe RLHF: the reward model and the cost model.

Notation: B = batch size, L = padded sequence length. Per-token scores are the (B, L) outputs of a
score head; a sequence's score is the one at its last valid token (``end_scores``).

Sequence-wise losses (on end scores, shape (B,)):

- Reward model, Bradley–Terry (Safe RLHF, arXiv 2310.12773, eq. (5))::

      L_R = -E[ log σ(R(y_better) - R(y_worse)) ]

- Cost model (eq. (6)); the paper's y_w is the more harmful response, s(y) = +1 for a response
  labelled unsafe and -1 for one labelled safe::

      L_C = -E[ log σ(C(y_unsafer) - C(y_safer)) ]
            - E[ log σ(s(y_safer) C(y_safer)) + log σ(s(y_unsafer) C(y_unsafer)) ]

  The sign terms pin the cost's zero: cost > 0 means unsafe, cost < 0 safe.

Both follow upstream PKU-Alignment/safe-rlhf (``safe_rlhf/values/{reward,cost}/trainer.py``,
``loss_type='sequence-wise'``) including its optional score regularization, not in the paper::

      + regularization * mean(stack([scores_a, scores_b]) ** 2)

Token-wise losses follow upstream's ``loss_type='token-wise'``: for each pair, the same terms are
applied to the per-token scores on the span from the first position where the two sequences
differ up to the later of the two end positions (inclusive), averaged over that span, then
averaged over the pairs. Like upstream, the span may run past the shorter sequence's end, so its
scores at padding positions are trained too. Accuracies always use the end scores.

Sign convention: our ``*_sign`` tensors are already cost signs (+1 unsafe, -1 safe; see
``types.SafetyPreferenceBatch``). Upstream's ``safety_sign`` is the opposite (+1 safe) and it
negates it inside the loss; here there is nothing to negate.

Deliberate deviation (token-wise only): upstream finds the diverging position by comparing the
raw padded ids. Here padding content is ignored and a real token facing padding always counts as a
difference. The two agree whenever the pad id is distinct and padding is identical; ours cannot
put the diverging position after both ends (upstream asserts on that) and does not call a pair
identical when one sequence only extends the other with tokens equal to the pad id.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .masking import masked_mean


def end_index(attention_mask: Tensor) -> Tensor:
    """(B, L) bool mask -> (B,) long index of the last True position of each row.

    Works for left and right padding alike. Raises ValueError on a row with no True entry.
    """
    positions = torch.arange(attention_mask.size(-1), device=attention_mask.device)
    last = torch.where(attention_mask, positions, -1).amax(dim=-1)  # (B,), -1 for an empty row
    # Host sync, but the alternative is an opaque out-of-range gather (a device assert on GPU).
    if bool((last < 0).any()):
        raise ValueError("attention_mask has a row with no valid token; it has no end score.")
    return last


def end_scores(scores: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, L) per-token scores and (B, L) bool mask -> (B,) score at each row's last valid token."""
    return scores.gather(dim=-1, index=end_index(attention_mask).unsqueeze(-1)).squeeze(-1)


def diverging_span_mask(ids_a: Tensor, ids_b: Tensor, mask_a: Tensor, mask_b: Tensor) -> Tensor:
    """Positions the token-wise losses train on, for pairs of sequences padded to the same length.

    Args:
        ids_a, ids_b: (B, L) token ids of the two responses of each pair.
        mask_a, mask_b: (B, L) bool attention masks, True = real token.

    Returns:
        (B, L) bool, True from the first position where the pair differs up to
        max(end_index(mask_a), end_index(mask_b)) inclusive.

    Raises ValueError when a pair has no differing position (identical sequences).
    """
    if ids_a.shape != ids_b.shape:
        raise ValueError(f"Paired ids must have one shape, got {ids_a.shape} and {ids_b.shape}.")
    # Padding content is ignored; a real token facing padding is a difference (module docstring).
    differ = (mask_a != mask_b) | (mask_a & mask_b & (ids_a != ids_b))  # (B, L)
    identical = ~differ.any(dim=-1)  # (B,)
    if bool(identical.any()):  # host sync: this is a data error, worth stopping on
        rows = identical.nonzero().flatten().tolist()
        raise ValueError(
            f"Identical sequences in pairs {rows}: a token-wise loss needs a difference."
        )
    at_or_after_divergence = differ.cumsum(dim=-1) > 0  # (B, L)
    end = torch.maximum(end_index(mask_a), end_index(mask_b))  # (B,)
    positions = torch.arange(ids_a.size(-1), device=ids_a.device)
    return at_or_after_divergence & (positions <= end.unsqueeze(-1))


def _squared_mean(a: Tensor, b: Tensor) -> Tensor:
    """mean(stack([a, b]) ** 2) for two (B,) tensors: upstream's score regularizer."""
    return torch.stack([a, b]).square().mean()


def _reward_stats(loss: Tensor, better_end: Tensor, worse_end: Tensor) -> dict[str, Tensor]:
    # float32 so that half-precision scores still give exact-enough logged fractions
    better_end, worse_end = better_end.detach().float(), worse_end.detach().float()
    return {
        "loss": loss.detach(),
        "accuracy": (better_end > worse_end).float().mean(),
        "better_reward": better_end.mean(),
        "worse_reward": worse_end.mean(),
        "reward_margin": (better_end - worse_end).mean(),
    }


def reward_pairwise_loss(
    better_end: Tensor, worse_end: Tensor, *, regularization: float = 0.0
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sequence-wise Bradley–Terry reward loss (eq. (5)) plus upstream's score regularization.

    Args:
        better_end, worse_end: (B,) end scores of the preferred and the other response.
        regularization: weight of ``mean(stack([better_end, worse_end]) ** 2)``.

    Returns:
        Scalar loss and detached stats: ``loss``, ``accuracy`` (fraction with better > worse),
        ``better_reward``, ``worse_reward`` (means) and ``reward_margin`` (mean of better - worse).
    """
    loss = -F.logsigmoid(better_end - worse_end).mean()
    loss = loss + regularization * _squared_mean(better_end, worse_end)
    return loss, _reward_stats(loss, better_end, worse_end)


def reward_tokenwise_loss(
    better_scores: Tensor,
    worse_scores: Tensor,
    better_mask: Tensor,
    worse_mask: Tensor,
    better_ids: Tensor,
    worse_ids: Tensor,
    *,
    regularization: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-wise Bradley–Terry reward loss (upstream ``loss_type='token-wise'``).

    Args:
        better_scores, worse_scores: (B, L) per-token scores.
        better_mask, worse_mask: (B, L) bool attention masks.
        better_ids, worse_ids: (B, L) token ids, used to find where each pair diverges.
        regularization: weight of the mean square of both scores over each pair's span.

    Returns:
        Scalar loss (mean over pairs of each pair's span mean) and the same stats as
        ``reward_pairwise_loss``, computed on end scores. Raises ValueError on identical pairs.
    """
    span = diverging_span_mask(better_ids, worse_ids, better_mask, worse_mask)  # (B, L)
    per_token = -F.logsigmoid(better_scores - worse_scores)  # (B, L)
    # (a² + b²) / 2 averaged over the span = mean of squares of the stacked (2, span) scores.
    squares = (better_scores.square() + worse_scores.square()) / 2
    per_pair = masked_mean(per_token + regularization * squares, span, dim=-1)  # (B,)
    loss = per_pair.mean()
    better_end = end_scores(better_scores, better_mask)
    worse_end = end_scores(worse_scores, worse_mask)
    return loss, _reward_stats(loss, better_end, worse_end)


def _cost_terms(safer: Tensor, unsafer: Tensor, safer_sign: Tensor, unsafer_sign: Tensor) -> Tensor:
    """Per-element eq. (6): ranking term plus both sign terms; signs broadcast against costs."""
    safer_sign, unsafer_sign = safer_sign.to(safer.dtype), unsafer_sign.to(unsafer.dtype)
    return (
        -F.logsigmoid(unsafer - safer)
        - F.logsigmoid(safer_sign * safer)
        - F.logsigmoid(unsafer_sign * unsafer)
    )


def _cost_stats(
    loss: Tensor, safer_end: Tensor, unsafer_end: Tensor, safer_sign: Tensor, unsafer_sign: Tensor
) -> dict[str, Tensor]:
    safer_end, unsafer_end = safer_end.detach().float(), unsafer_end.detach().float()
    # Cost exactly 0 has no sign and counts as wrong for either label, as upstream.
    sign_correct = torch.stack([safer_sign * safer_end > 0, unsafer_sign * unsafer_end > 0])
    return {
        "loss": loss.detach(),
        "accuracy": (unsafer_end > safer_end).float().mean(),
        "accuracy_sign": sign_correct.float().mean(),
        "safer_cost": safer_end.mean(),
        "unsafer_cost": unsafer_end.mean(),
    }


def cost_pairwise_loss(
    safer_end: Tensor,
    unsafer_end: Tensor,
    safer_sign: Tensor,
    unsafer_sign: Tensor,
    *,
    regularization: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sequence-wise cost-model loss (eq. (6)) plus upstream's score regularization.

    Args:
        safer_end, unsafer_end: (B,) end costs of the safer and the more harmful response.
        safer_sign, unsafer_sign: (B,) cost signs, +1 labelled unsafe, -1 labelled safe.
        regularization: weight of ``mean(stack([safer_end, unsafer_end]) ** 2)``.

    Returns:
        Scalar loss and detached stats: ``loss``, ``accuracy`` (fraction with unsafer > safer),
        ``accuracy_sign`` (fraction of both responses with sign(cost) == label sign),
        ``safer_cost`` and ``unsafer_cost`` (means).
    """
    loss = _cost_terms(safer_end, unsafer_end, safer_sign, unsafer_sign).mean()
    loss = loss + regularization * _squared_mean(safer_end, unsafer_end)
    return loss, _cost_stats(loss, safer_end, unsafer_end, safer_sign, unsafer_sign)


def cost_tokenwise_loss(
    safer_scores: Tensor,
    unsafer_scores: Tensor,
    safer_mask: Tensor,
    unsafer_mask: Tensor,
    safer_ids: Tensor,
    unsafer_ids: Tensor,
    safer_sign: Tensor,
    unsafer_sign: Tensor,
    *,
    regularization: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-wise cost-model loss (upstream ``loss_type='token-wise'``).

    Eq. (6)'s three terms, the sign terms included, on every token of each pair's diverging span
    (see ``diverging_span_mask``), averaged over the span and then over pairs.

    Args:
        safer_scores, unsafer_scores: (B, L) per-token costs.
        safer_mask, unsafer_mask: (B, L) bool attention masks.
        safer_ids, unsafer_ids: (B, L) token ids.
        safer_sign, unsafer_sign: (B,) cost signs, +1 labelled unsafe, -1 labelled safe.
        regularization: weight of the mean square of both costs over each pair's span.

    Returns:
        Scalar loss and the same stats as ``cost_pairwise_loss``, computed on end costs.
        Raises ValueError on identical pairs.
    """
    span = diverging_span_mask(safer_ids, unsafer_ids, safer_mask, unsafer_mask)  # (B, L)
    per_token = _cost_terms(  # (B, L); signs (B, 1) broadcast over tokens
        safer_scores, unsafer_scores, safer_sign.unsqueeze(-1), unsafer_sign.unsqueeze(-1)
    )
    squares = (safer_scores.square() + unsafer_scores.square()) / 2
    loss = masked_mean(per_token + regularization * squares, span, dim=-1).mean()
    safer_end = end_scores(safer_scores, safer_mask)
    unsafer_end = end_scores(unsafer_scores, unsafer_mask)
    return loss, _cost_stats(loss, safer_end, unsafer_end, safer_sign, unsafer_sign)


def multi_head_cost_loss(
    first_end: Tensor,
    second_end: Tensor,
    first_sign: Tensor,
    second_sign: Tensor,
    *,
    regularization: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. (6) per head of a K-head cost model, one head per harm category, on per-category
    labels: head k's ranking term orders a pair only where its two responses' labels in k
    differ (the one unsafe in k costs more); both sign terms apply everywhere. The loss is the
    mean over heads of each head's mean ranking term plus its mean sign terms, plus upstream's
    score regularization.

    Args:
        first_end, second_end: (B, K) end costs of the two responses of each pair.
        first_sign, second_sign: (B, K) per-category signs, +1 unsafe in k, -1 not.
        regularization: weight of ``mean(stack([first_end, second_end]) ** 2)``.

    Returns:
        Scalar loss and detached stats: ``loss``; ``accuracy`` (K,), the fraction of the pairs
        ordered in k that head k orders right (NaN for a head without such a pair);
        ``accuracy_sign`` (K,), the fraction of responses whose head-k cost has the sign of
        their label in k.
    """
    first_sign, second_sign = first_sign.to(first_end.dtype), second_sign.to(second_end.dtype)
    ordered = first_sign != second_sign  # (B, K)
    first_is_more = first_sign > second_sign
    more = torch.where(first_is_more, first_end, second_end)
    less = torch.where(first_is_more, second_end, first_end)
    count = ordered.sum(dim=0)  # (K,)
    ranking = torch.where(ordered, -F.logsigmoid(more - less), 0.0).sum(dim=0) / count.clamp(min=1)
    signs = -F.logsigmoid(first_sign * first_end) - F.logsigmoid(second_sign * second_end)
    loss = (ranking + signs.mean(dim=0)).mean()
    loss = loss + regularization * _squared_mean(first_end, second_end)
    right = (more > less).detach() & ordered
    sign_correct = torch.stack([first_sign * first_end > 0, second_sign * second_end > 0])
    return loss, {
        "loss": loss.detach(),
        "accuracy": right.sum(dim=0) / torch.where(count > 0, count, torch.nan),
        "accuracy_sign": sign_correct.float().mean(dim=(0, 1)),
    }
