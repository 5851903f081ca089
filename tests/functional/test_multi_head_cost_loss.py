"""The per-category cost loss of a multi-head cost model, against hand values."""

from __future__ import annotations

import math

import pytest
import torch

from safe_rlhf_lightning.functional import cost_pairwise_loss, multi_head_cost_loss


def _neg_log_sigmoid(x: float) -> float:
    return math.log1p(math.exp(-x))


def test_each_head_ranks_only_the_pairs_its_labels_order():
    first_end = torch.tensor([[1.0, -1.0], [2.0, 2.0]], dtype=torch.float64)
    second_end = torch.tensor([[-1.0, 0.0], [1.5, -0.5]], dtype=torch.float64)
    first_sign = torch.tensor([[1, -1], [-1, 1]])
    second_sign = torch.tensor([[-1, -1], [1, -1]])
    loss, stats = multi_head_cost_loss(first_end, second_end, first_sign, second_sign)

    f = _neg_log_sigmoid
    # Head 0: both pairs ordered (pair 0: first unsafe, 1 vs -1; pair 1: second unsafe, 1.5 vs 2).
    ranking_0 = (f(1.0 - -1.0) + f(1.5 - 2.0)) / 2
    signs_0 = ((f(1.0) + f(1.0)) + (f(-2.0) + f(1.5))) / 2
    # Head 1: only pair 1 is ordered (first unsafe in it, 2 vs -0.5); pair 0 is safe in both.
    ranking_1 = f(2.0 - -0.5)
    signs_1 = ((f(1.0) + f(0.0)) + (f(2.0) + f(0.5))) / 2
    expected = ((ranking_0 + signs_0) + (ranking_1 + signs_1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert stats["accuracy"].tolist() == [0.5, 1.0]  # head 0 ranks pair 1 the wrong way
    assert stats["accuracy_sign"].tolist() == [0.75, 0.75]  # a cost of exactly 0 has no sign


def test_a_head_without_an_ordered_pair_has_no_accuracy_and_no_ranking_term():
    ends = torch.tensor([[0.3], [-0.2]])
    signs = torch.tensor([[-1], [-1]])
    loss, stats = multi_head_cost_loss(ends, -ends, signs, signs)
    assert math.isnan(stats["accuracy"].item())
    f = _neg_log_sigmoid
    expected = ((f(-0.3) + f(0.3)) + (f(0.2) + f(-0.2))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_one_head_with_every_pair_ordered_is_the_single_head_loss():
    g = torch.Generator().manual_seed(0)
    safer, unsafer = torch.randn(16, generator=g), torch.randn(16, generator=g)
    safer_sign, unsafer_sign = -torch.ones(16, dtype=torch.long), torch.ones(16, dtype=torch.long)
    single, single_stats = cost_pairwise_loss(
        safer, unsafer, safer_sign, unsafer_sign, regularization=0.01
    )
    multi, stats = multi_head_cost_loss(
        safer[:, None], unsafer[:, None], safer_sign[:, None], unsafer_sign[:, None],
        regularization=0.01,
    )  # fmt: skip
    torch.testing.assert_close(multi, single)
    assert stats["accuracy"].item() == single_stats["accuracy"].item()
    assert stats["accuracy_sign"].item() == single_stats["accuracy_sign"].item()
