"""GRPO, Dr. GRPO and RLOO advantages against hand values and float64 loops over ragged groups."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from safe_rlhf_lightning.functional import (
    grpo_advantages,
    kl_penalized_scores,
    kl_shaped_scores,
    mix_advantages,
    rloo_advantages,
    token_advantages,
)


def ragged_groups(seed: int, num_groups: int = 6):
    """Shuffled float64 scores in groups of 1..5 responses, with non-contiguous ids.

    Returns scores (N,) float64, group_ids (N,) long, and the list of member indices per group.
    """
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 6, (num_groups,), generator=g).tolist()
    sizes[0], sizes[1] = 1, 4  # always a singleton and a full group
    ids = torch.cat([torch.full((n,), 10 * (k + 1)) for k, n in enumerate(sizes)])
    ids = ids[torch.randperm(len(ids), generator=g)]  # groups interleaved, not sorted
    scores = torch.randn(len(ids), generator=g, dtype=torch.float64) * 3 + 1
    members = [[i for i, x in enumerate(ids.tolist()) if x == gid] for gid in ids.unique().tolist()]
    return scores, ids, members


def naive_grpo(scores: list[float], members: list[list[int]], scale: bool, eps: float):
    out = [0.0] * len(scores)
    for group in members:
        values = [scores[i] for i in group]
        mean = sum(values) / len(values)
        std = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            if len(values) > 1
            else 0.0
        )
        for i in group:
            out[i] = (scores[i] - mean) / (std + eps) if scale else scores[i] - mean
    return out


def naive_rloo(scores: list[float], members: list[list[int]]):
    out = [0.0] * len(scores)
    for group in members:
        for i in group:
            others = [scores[j] for j in group if j != i]
            out[i] = scores[i] - sum(others) / len(others) if others else 0.0
    return out


def test_grpo_by_hand():
    scores = torch.tensor([1.0, 3.0, 5.0, 2.0, 4.0])
    ids = torch.tensor([0, 0, 0, 1, 1])
    # group 0: mean 3, sample std sqrt((4 + 0 + 4) / 2) = 2; group 1: mean 3, std sqrt(2)
    expected = torch.tensor([-1.0, 0.0, 1.0, -1 / math.sqrt(2), 1 / math.sqrt(2)])
    torch.testing.assert_close(grpo_advantages(scores, ids, eps=0.0), expected)
    # Dr. GRPO: centred only
    torch.testing.assert_close(
        grpo_advantages(scores, ids, scale_by_std=False), torch.tensor([-2.0, 0, 2, -1, 1])
    )


def test_rloo_by_hand():
    scores = torch.tensor([1.0, 3.0, 5.0, 2.0, 4.0, 7.0])
    ids = torch.tensor([0, 0, 0, 1, 1, 2])
    # 1 - (3+5)/2, 3 - (1+5)/2, 5 - (1+3)/2; 2 - 4, 4 - 2; a group of one: 0
    expected = torch.tensor([-3.0, 0.0, 3.0, -2.0, 2.0, 0.0])
    torch.testing.assert_close(rloo_advantages(scores, ids), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale_by_std", [True, False])
def test_grpo_matches_a_float64_loop_on_ragged_groups(seed, scale_by_std):
    scores, ids, members = ragged_groups(seed)
    out = grpo_advantages(scores, ids, scale_by_std=scale_by_std, eps=1e-6)
    expected = naive_grpo(scores.tolist(), members, scale_by_std, 1e-6)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(4))
def test_rloo_matches_a_float64_loop_on_ragged_groups(seed):
    scores, ids, members = ragged_groups(seed)
    expected = naive_rloo(scores.tolist(), members)
    torch.testing.assert_close(rloo_advantages(scores, ids), torch.tensor(expected).double())


@pytest.mark.parametrize("seed", range(3))
def test_rloo_is_k_over_k_minus_one_times_the_centred_score(seed):
    """s_i - mean_others = k/(k-1) (s_i - mean_group): RLOO is Dr. GRPO rescaled per group."""
    scores, ids, members = ragged_groups(seed)
    centred = grpo_advantages(scores, ids, scale_by_std=False)
    rloo = rloo_advantages(scores, ids)
    for group in members:
        k = len(group)
        factor = k / (k - 1) if k > 1 else 0.0
        torch.testing.assert_close(rloo[group], factor * centred[group])


@pytest.mark.parametrize("estimator", [grpo_advantages, rloo_advantages])
def test_a_group_of_equal_scores_gets_exactly_zero(estimator):
    # 0.45 is not exact in binary: in float32 the naive mean of three copies is off by one bit.
    scores = torch.tensor([0.45, 0.45, 0.45, 0.7, -2.0, 0.3], dtype=torch.float32)
    ids = torch.tensor([5, 5, 5, 8, 8, 9])
    assert not (scores[:3] - scores[:3].sum() / 3).eq(0).all()  # the trap is real
    out = estimator(scores, ids)
    assert torch.isfinite(out).all()
    assert out[:3].eq(0).all() and out[5] == 0  # equal scores, and a group of one
    assert out[3] > 0 > out[4]


def test_equal_scores_give_zero_even_without_eps():
    scores = torch.tensor([2.5, 2.5, 2.5, 2.5, 1.0, 3.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1])
    for eps in (0.0, 1e-6):
        out = grpo_advantages(scores, ids, eps=eps)
        assert out[:4].eq(0).all()  # 0 / 0 would be NaN
        assert out[4] < 0 < out[5]


def test_advantages_do_not_depend_on_group_order_or_ids():
    scores, ids, _ = ragged_groups(seed=7)
    perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(1))
    relabelled = ids * 3 + 1000  # other ids, same partition
    for estimator in (grpo_advantages, rloo_advantages):
        base = estimator(scores, ids)
        torch.testing.assert_close(estimator(scores[perm], relabelled[perm]), base[perm])


def test_grpo_is_shift_and_scale_invariant_within_a_group():
    """(a s + b) gives the same GRPO advantages for a > 0: the reward's scale and offset do not
    matter, which is why each stream can use its own model's units."""
    scores, ids, _ = ragged_groups(seed=3)
    torch.testing.assert_close(
        grpo_advantages(5.0 * scores - 7.0, ids, eps=0.0), grpo_advantages(scores, ids, eps=0.0)
    )


def test_estimators_are_detached_and_leave_inputs_alone():
    scores = torch.randn(6, requires_grad=True)
    ids = torch.tensor([0, 0, 1, 1, 1, 2])
    before = scores.detach().clone()
    for estimator in (grpo_advantages, rloo_advantages):
        out = estimator(scores, ids)
        assert not out.requires_grad
        assert out.dtype == scores.dtype
    assert torch.equal(scores.detach(), before)


def test_token_advantages_broadcast_over_the_mask():
    advantages = torch.tensor([1.5, -2.0, 0.25])
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True]])
    expected = torch.tensor([[1.5, 1.5, 0.0], [-2.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    assert torch.equal(token_advantages(advantages, mask), expected)


def test_kl_penalized_scores_by_hand():
    end = torch.tensor([2.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, 9.0], [-1.0, -3.0, -2.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # KL sums: row 0: 0.5 - 1.0 (the padded token is ignored); row 1: 0 + 2 + 1
    out = kl_penalized_scores(end, logprobs, ref, mask, kl_weight=-0.1)
    torch.testing.assert_close(out, torch.tensor([2.0 + 0.05, -1.0 - 0.3]))


def test_kl_penalized_scores_is_the_token_sum_of_kl_shaped_scores():
    g = torch.Generator().manual_seed(5)
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [2], [1], [4]])
    logprobs, ref = (torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in range(2))
    end = torch.randn(4, generator=g, dtype=torch.float64)
    for kl_weight in (-0.05, 0.05):
        shaped = kl_shaped_scores(
            end, logprobs, ref, mask, kl_weight=kl_weight, clip_range_score=1e9
        )
        out = kl_penalized_scores(end, logprobs, ref, mask, kl_weight=kl_weight)
        torch.testing.assert_close(out, shaped.sum(dim=-1))
        for b in range(4):
            n = int(mask[b].sum())
            kl = sum(logprobs[b, t].item() - ref[b, t].item() for t in range(n))
            assert out[b].item() == pytest.approx(end[b].item() + kl_weight * kl, rel=1e-12)


# As a Hydra choice would build them: ``_partial_: true`` with the options bound.
LINEAR_ESTIMATORS = [rloo_advantages, functools.partial(grpo_advantages, scale_by_std=False)]


@pytest.mark.parametrize("estimator", LINEAR_ESTIMATORS, ids=["rloo", "dr_grpo"])
def test_kl_weight_of_the_mix_is_kl_coef_for_every_lambda_with_linear_estimators(estimator):
    """RLOO and Dr. GRPO are linear: -β·KL in the reward and +β·KL in the cost leave a mixed KL
    weight of β whatever λ, as with GAE (the design's KL rule)."""
    scores, ids, _ = ragged_groups(seed=2)
    g = torch.Generator().manual_seed(2)
    logprobs, ref = (torch.randn(len(ids), 5, generator=g, dtype=torch.float64) for _ in range(2))
    mask = torch.ones(len(ids), 5, dtype=torch.bool)
    zero = torch.zeros_like(scores)
    a_r = estimator(kl_penalized_scores(zero, logprobs, ref, mask, kl_weight=-0.1), ids)
    a_c = estimator(kl_penalized_scores(zero, logprobs, ref, mask, kl_weight=0.1), ids)
    for lam in (0.0, 0.5, 5.0):
        torch.testing.assert_close(mix_advantages(a_r, a_c, lam), a_r)


def test_kl_penalized_scores_are_detached():
    logprobs = torch.randn(2, 3, requires_grad=True)
    out = kl_penalized_scores(
        torch.ones(2, requires_grad=True),
        logprobs,
        torch.zeros(2, 3),
        torch.ones(2, 3, dtype=torch.bool),
        kl_weight=-0.1,
    )
    assert not out.requires_grad
