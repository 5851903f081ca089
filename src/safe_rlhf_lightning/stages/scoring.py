"""Helpers the preference stages share: scoring both responses of a pair in one pass."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..models import ScoreModel


class PairScores(NamedTuple):
    first_scores: Tensor  # (B, L) per-token scores of the first response of each pair
    second_scores: Tensor  # (B, L)
    first_end: Tensor  # (B,) score at the last token of the first response
    second_end: Tensor  # (B,)


def score_pair(
    model: ScoreModel,
    first_ids: Tensor,
    first_mask: Tensor,
    second_ids: Tensor,
    second_mask: Tensor,
) -> PairScores:
    """One forward pass over both sides of every pair (the collators pad them to one length)."""
    output = model(torch.cat([first_ids, second_ids]), torch.cat([first_mask, second_mask]))
    scores = output.scores[..., 0]  # (2B, L): score_dim 1
    end = output.end_scores[..., 0]  # (2B,)
    first_scores, second_scores = scores.chunk(2)
    first_end, second_end = end.chunk(2)
    return PairScores(first_scores, second_scores, first_end, second_end)


def pair_end_scores(
    model: ScoreModel,
    first_ids: Tensor,
    first_mask: Tensor,
    second_ids: Tensor,
    second_mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """(B, D) end scores of every head of a D-head model for each side, in one forward pass."""
    output = model(torch.cat([first_ids, second_ids]), torch.cat([first_mask, second_mask]))
    first, second = output.end_scores.chunk(2)
    return first, second


def mean_and_std(values: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Mean and (population) standard deviation of all values gathered over an epoch."""
    stacked = torch.cat(values).float()
    return stacked.mean(), stacked.std(correction=0)
