"""Pure tensor math: tensors in, tensors out, no state. Imports torch only."""

from .logprobs import gather_logprobs
from .losses import sft_loss
from .masking import masked_mean, masked_sum
from .preference import (
    cost_pairwise_loss,
    cost_tokenwise_loss,
    diverging_span_mask,
    end_index,
    end_scores,
    reward_pairwise_loss,
    reward_tokenwise_loss,
)

__all__ = [
    "cost_pairwise_loss",
    "cost_tokenwise_loss",
    "diverging_span_mask",
    "end_index",
    "end_scores",
    "gather_logprobs",
    "masked_mean",
    "masked_sum",
    "reward_pairwise_loss",
    "reward_tokenwise_loss",
    "sft_loss",
]
