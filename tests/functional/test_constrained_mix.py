"""The K-constraint advantage mix: one constraint is the existing mix bit for bit."""

from __future__ import annotations

import pytest
import torch

from safe_rlhf_lightning.functional import (
    generalized_advantages,
    kl_shaped_scores,
    mix_advantages,
    mix_constrained_advantages,
)


@pytest.mark.parametrize("lambda_value", [0.0, 0.1, 0.3, 1.0, 1.7, 4.99])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_one_constraint_equals_mix_advantages_bit_for_bit(lambda_value, dtype):
    g = torch.Generator().manual_seed(0)
    a_r = torch.randn(4, 9, generator=g).to(dtype)
    a_c = torch.randn(4, 9, generator=g).to(dtype)
    expected = mix_advantages(a_r, a_c, lambda_value)
    assert torch.equal(mix_constrained_advantages(a_r, a_c.unsqueeze(0), [lambda_value]), expected)
    assert torch.equal(mix_constrained_advantages(a_r, [a_c], (lambda_value,)), expected)


def test_two_constraints_by_hand():
    a_r = torch.tensor([1.0, -2.0])
    a_c = torch.tensor([[3.0, 1.0], [-1.0, 2.0]])
    # (1 - 1*3 - 2*(-1)) / 4 = 0;  (-2 - 1*1 - 2*2) / 4 = -7/4
    out = mix_constrained_advantages(a_r, a_c, [1.0, 2.0])
    torch.testing.assert_close(out, torch.tensor([0.0, -1.75]))


def test_no_constraint_is_the_reward_advantage():
    a_r = torch.randn(3, 5)
    out = mix_constrained_advantages(a_r, [], [])
    assert torch.equal(out, a_r)
    assert out is not a_r


@pytest.mark.parametrize("seed", range(3))
def test_matches_a_float64_loop(seed):
    g = torch.Generator().manual_seed(seed)
    k, b, t = 3, 4, 6
    a_r = torch.randn(b, t, generator=g, dtype=torch.float64)
    a_c = torch.randn(k, b, t, generator=g, dtype=torch.float64)
    lambdas = (torch.rand(k, generator=g, dtype=torch.float64) * 5).tolist()
    out = mix_constrained_advantages(a_r, a_c, lambdas)
    for i in range(b):
        for j in range(t):
            numerator = a_r[i, j].item() - sum(
                lam * a_c[n, i, j].item() for n, lam in enumerate(lambdas)
            )
            assert out[i, j].item() == pytest.approx(numerator / (1 + sum(lambdas)), rel=1e-12)


def test_the_kl_weight_stays_kl_coef_for_any_multipliers():
    """Each cost stream carries +β·KL, the reward stream -β·KL: with zero end scores the mix is
    the reward stream's -β·KL-to-go whatever the λ_k (the one-constraint property, generalised)."""
    g = torch.Generator().manual_seed(4)
    mask = torch.arange(6).unsqueeze(0) < torch.tensor([[6], [3], [1]])
    logprobs = torch.randn(3, 6, generator=g, dtype=torch.float64)
    ref = torch.randn(3, 6, generator=g, dtype=torch.float64)
    zero, values = torch.zeros(3, dtype=torch.float64), torch.zeros(3, 6, dtype=torch.float64)

    def stream(kl_weight: float) -> torch.Tensor:
        scores = kl_shaped_scores(
            zero, logprobs, ref, mask, kl_weight=kl_weight, clip_range_score=1e9
        )
        return generalized_advantages(values, scores, mask, gamma=1.0, gae_lambda=1.0).advantages

    a_r, a_c = stream(-0.2), stream(0.2)
    for lambdas in ([0.5, 2.0], [0.0, 3.0, 1.0]):
        out = mix_constrained_advantages(a_r, [a_c] * len(lambdas), lambdas)
        torch.testing.assert_close(out, a_r)


def test_mismatched_streams_and_multipliers_raise():
    with pytest.raises(ValueError, match="2 cost advantage streams but 1 multipliers"):
        mix_constrained_advantages(torch.zeros(2), torch.zeros(2, 2), [1.0])
