"""Masked reductions. Masks are boolean, True = valid token."""

from __future__ import annotations

import torch
from torch import Tensor


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``values`` where ``mask`` is True, over ``dim`` (all elements when None)."""
    masked = torch.where(mask, values, torch.zeros_like(values))
    return masked.sum() if dim is None else masked.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` over the True entries of ``mask``.

    An all-False mask gives 0 rather than NaN (a row with no response token contributes nothing),
    since the count is clamped to at least 1.
    """
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)


def response_lengths(mask: Tensor) -> Tensor:
    """(B, T) bool -> (B,) float32: the number of valid tokens of each row."""
    return mask.sum(dim=-1).float()
