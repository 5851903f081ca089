"""Training losses. Each returns ``(loss, stats)``; stats are detached tensors for logging."""

from __future__ import annotations

import torch
from torch import Tensor

from .logprobs import gather_logprobs
from .masking import masked_mean


def sft_loss(
    logits: Tensor, input_ids: Tensor, loss_mask: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """Next-token negative log-likelihood on response tokens only.

    Args:
        logits: (B, L, V) causal-LM outputs on ``input_ids``.
        input_ids: (B, L) prompt + response token ids (right padded).
        loss_mask: (B, L) bool, True on the response tokens to predict (never on prompt or padding).

    The mean is over all trained tokens of the batch (token-weighted, like the usual cross-entropy
    with ignored labels), not a mean of per-sequence means.
    """
    token_logprobs = gather_logprobs(logits, input_ids)  # (B, L-1)
    target_mask = loss_mask[:, 1:]  # token t+1 is predicted from position t
    loss = -masked_mean(token_logprobs, target_mask)
    stats = {
        "loss": loss.detach(),
        "num_tokens": target_mask.sum().detach().to(torch.float32),
    }
    return loss, stats


def ptx_loss(
    logits: Tensor, input_ids: Tensor, loss_mask: Tensor, *, ptx_coef: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PTX term of PPO (Ouyang et al. 2022, Eq. 2): ``ptx_coef`` times the SFT loss on
    demonstrations, mixed into the actor's update so that it keeps its supervised skills.

    Upstream safe-rlhf takes a separate optimizer step on it after the RL step; its default
    coefficient is 16.
    """
    loss, stats = sft_loss(logits, input_ids, loss_mask)
    return ptx_coef * loss, {"loss": stats["loss"], "num_tokens": stats["num_tokens"]}
