"""Pure tensor math: tensors in, tensors out, no state. Imports torch only."""

from .logprobs import gather_logprobs
from .losses import sft_loss
from .masking import masked_mean, masked_sum

__all__ = ["gather_logprobs", "masked_mean", "masked_sum", "sft_loss"]
