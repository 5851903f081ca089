"""PPO-Lagrangian math against hand computation and naive float64 loops on ragged rollouts."""

from __future__ import annotations

import math

import pytest
import torch

from safe_rlhf_lightning.functional.losses import ptx_loss, sft_loss
from safe_rlhf_lightning.functional.ppo import (
    clipped_value_loss,
    explained_variance,
    generalized_advantages,
    kl_shaped_scores,
    last_token_index,
    mix_advantages,
    ppo_actor_loss,
    sequence_masked_mean,
    whiten,
)


def ragged(batch: int = 5, length: int = 7, seed: int = 0):
    """Random float64 rollouts whose rows have 1..length valid tokens (right padded)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length  # one full row
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    rand = lambda: torch.randn(batch, length, generator=g, dtype=torch.float64)  # noqa: E731
    return mask, lengths.tolist(), rand


def naive_gae(values, rewards, n, gamma, lam):
    """Textbook GAE on one sequence of n tokens (python floats)."""
    advantages = [0.0] * n
    running = 0.0
    for t in reversed(range(n)):
        next_value = values[t + 1] if t + 1 < n else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def test_sequence_masked_mean_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # row means 2 and 4: rows count equally, not tokens ((1+2+3+4)/4 = 2.5 would be token-weighted)
    assert sequence_masked_mean(values, mask).item() == pytest.approx(3.0)


def test_last_token_index():
    mask = torch.tensor([[True, True, False], [True, True, True], [True, False, False]])
    assert last_token_index(mask).tolist() == [1, 2, 0]


def test_kl_shaped_scores_by_hand():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -3.0, -2.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    end = torch.tensor([2.0, -1.0])
    rewards = kl_shaped_scores(end, logprobs, ref, mask, kl_weight=-0.1, clip_range_score=50.0)
    # KL per token: row 0: [0.5, -1.0, (0)], row 1: [0, 2, 1]
    expected = torch.tensor([[-0.05, 0.1 + 2.0, 0.0], [0.0, -0.2, -0.1 - 1.0]])
    torch.testing.assert_close(rewards, expected)
    costs = kl_shaped_scores(-end, logprobs, ref, mask, kl_weight=0.1, clip_range_score=1.0)
    # cost stream: +0.1 KL, end cost added, clipped to ±1
    expected_costs = torch.tensor([[0.05, -0.1 - 1.0, 0.0], [0.0, 0.2, 0.1 + 1.0]]).clamp(-1, 1)
    torch.testing.assert_close(costs, expected_costs)


def test_kl_shaped_scores_matches_a_loop_on_ragged_rows():
    mask, lengths, rand = ragged(seed=1)
    logprobs, ref = rand(), rand()
    end = torch.randn(mask.shape[0], dtype=torch.float64)
    out = kl_shaped_scores(end, logprobs, ref, mask, kl_weight=-0.3, clip_range_score=0.7)
    for b, n in enumerate(lengths):
        for t in range(mask.shape[1]):
            if t >= n:
                expected = 0.0
            else:
                expected = -0.3 * (logprobs[b, t].item() - ref[b, t].item())
                expected += end[b].item() if t == n - 1 else 0.0
                expected = max(-0.7, min(0.7, expected))
            assert out[b, t].item() == pytest.approx(expected)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_a_naive_float64_loop(gamma, lam):
    mask, lengths, rand = ragged(seed=2)
    values, rewards = rand(), rand()
    out = generalized_advantages(values, rewards, mask, gamma=gamma, gae_lambda=lam)
    for b, n in enumerate(lengths):
        adv, ret = naive_gae(values[b, :n].tolist(), rewards[b, :n].tolist(), n, gamma, lam)
        torch.testing.assert_close(out.advantages[b, :n], torch.tensor(adv, dtype=torch.float64))
        torch.testing.assert_close(out.returns[b, :n], torch.tensor(ret, dtype=torch.float64))
        assert out.advantages[b, n:].abs().sum() == 0


def test_gae_with_gamma_and_lambda_one_gives_reward_to_go():
    mask, lengths, rand = ragged(seed=3)
    values, rewards = rand(), rand()
    out = generalized_advantages(values, rewards, mask, gamma=1.0, gae_lambda=1.0)
    for b, n in enumerate(lengths):
        to_go = rewards[b, :n].flip(0).cumsum(0).flip(0)
        torch.testing.assert_close(out.returns[b, :n], to_go)


def test_gae_by_hand_on_two_tokens():
    values = torch.tensor([[1.0, 2.0]])
    rewards = torch.tensor([[0.5, 3.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    out = generalized_advantages(values, rewards, mask, gamma=0.9, gae_lambda=0.5)
    delta1 = 3.0 - 2.0  # last token: no next value
    delta0 = 0.5 + 0.9 * 2.0 - 1.0
    a0 = delta0 + 0.9 * 0.5 * delta1
    torch.testing.assert_close(out.advantages, torch.tensor([[a0, delta1]]))
    torch.testing.assert_close(out.returns, torch.tensor([[a0 + 1.0, delta1 + 2.0]]))


def test_gae_leaves_inputs_alone_and_is_detached():
    values = torch.randn(2, 4, requires_grad=True)
    rewards = torch.randn(2, 4)
    before = rewards.clone()
    out = generalized_advantages(
        values, rewards, torch.ones(2, 4, dtype=torch.bool), gamma=1.0, gae_lambda=0.95
    )
    assert not out.advantages.requires_grad and not out.returns.requires_grad
    assert torch.equal(rewards, before)


def test_mix_advantages():
    a_r = torch.tensor([1.0, -2.0])
    a_c = torch.tensor([3.0, 1.0])
    torch.testing.assert_close(mix_advantages(a_r, a_c, 0.0), a_r)
    torch.testing.assert_close(mix_advantages(a_r, a_c, 1.0), torch.tensor([-1.0, -1.5]))
    torch.testing.assert_close(mix_advantages(a_r, a_c, 4.0), (a_r - 4 * a_c) / 5)


def test_mixed_kl_weight_is_kl_coef_for_every_lambda():
    """With zero end scores and zero values, the mixed advantage is -kl_coef * KL-to-go."""
    mask, _, rand = ragged(seed=4)
    logprobs, ref = rand(), rand()
    zero = torch.zeros(mask.shape[0], dtype=torch.float64)
    values = torch.zeros_like(logprobs)
    rewards = kl_shaped_scores(zero, logprobs, ref, mask, kl_weight=-0.2, clip_range_score=1e9)
    costs = kl_shaped_scores(zero, logprobs, ref, mask, kl_weight=0.2, clip_range_score=1e9)
    a_r = generalized_advantages(values, rewards, mask, gamma=1.0, gae_lambda=1.0).advantages
    a_c = generalized_advantages(values, costs, mask, gamma=1.0, gae_lambda=1.0).advantages
    for lam in (0.0, 0.5, 5.0):
        torch.testing.assert_close(mix_advantages(a_r, a_c, lam), a_r)


def naive_actor_loss(logprobs, old, adv, mask, eps):
    per_row = []
    for b, row in enumerate(mask):
        terms = []
        for t, valid in enumerate(row):
            if valid:
                ratio = math.exp(logprobs[b][t] - old[b][t])
                clipped = min(max(ratio, 1 - eps), 1 + eps)
                terms.append(min(ratio * adv[b][t], clipped * adv[b][t]))
        per_row.append(sum(terms) / len(terms))
    return -sum(per_row) / len(per_row)


def test_actor_loss_matches_a_naive_loop():
    mask, _, rand = ragged(seed=5)
    logprobs, old, adv = rand() * 0.3, rand() * 0.3, rand()
    loss, stats = ppo_actor_loss(logprobs, old, adv, mask, clip_range=0.2)
    expected = naive_actor_loss(logprobs.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2)
    assert loss.item() == pytest.approx(expected)
    ratio = (logprobs - old).exp()[mask]
    assert stats["clip_fraction"].item() == pytest.approx(
        ((ratio - 1).abs() > 0.2).double().mean().item()
    )
    assert stats["approx_kl"].item() >= 0


def test_actor_loss_by_hand_and_gradient_vanishes_when_clipped():
    old = torch.zeros(1, 2)
    logprobs = torch.tensor([[math.log(1.5), math.log(0.9)]], requires_grad=True)
    adv = torch.tensor([[1.0, -2.0]])
    loss, _ = ppo_actor_loss(logprobs, old, adv, torch.ones(1, 2, dtype=torch.bool), clip_range=0.2)
    # token 0: ratio 1.5 clipped to 1.2 (A > 0) -> 1.2; token 1: min(-1.8, -2*0.9) = -1.8
    assert loss.item() == pytest.approx(-(1.2 - 1.8) / 2)
    loss.backward()
    assert logprobs.grad[0, 0].item() == 0.0  # clipped token gives no gradient
    assert logprobs.grad[0, 1].item() == pytest.approx(-(-2.0 * 0.9) / 2)


def test_clipped_value_loss_matches_a_naive_loop():
    mask, _, rand = ragged(seed=6)
    values, old, returns = rand(), rand(), rand()
    loss, _ = clipped_value_loss(values, old, returns, mask, clip_range_value=0.5)
    rows = []
    for b in range(mask.shape[0]):
        terms = []
        for t in range(mask.shape[1]):
            if mask[b, t]:
                v, o, r = values[b, t].item(), old[b, t].item(), returns[b, t].item()
                clipped = min(max(v, o - 0.5), o + 0.5)
                terms.append(max((v - r) ** 2, (clipped - r) ** 2))
        rows.append(sum(terms) / len(terms))
    assert loss.item() == pytest.approx(0.5 * sum(rows) / len(rows))


def test_explained_variance():
    mask = torch.ones(2, 3, dtype=torch.bool)
    returns = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    mean = torch.full_like(returns, returns.mean().item())
    assert explained_variance(mean, returns, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_whiten_over_valid_tokens():
    mask, _, rand = ragged(seed=7)
    out = whiten(rand() * 3 + 2, mask)
    assert out[mask].mean().item() == pytest.approx(0.0, abs=1e-9)
    assert out[mask].var(unbiased=False).item() == pytest.approx(1.0, rel=1e-6)
    assert out[~mask].abs().sum() == 0


def test_ptx_loss_is_the_scaled_sft_loss():
    logits = torch.randn(2, 5, 11)
    ids = torch.randint(0, 11, (2, 5))
    loss_mask = torch.tensor([[False, True, True, True, False], [False, False, True, True, True]])
    loss, _ = ptx_loss(logits, ids, loss_mask, ptx_coef=16.0)
    assert loss.item() == pytest.approx(16.0 * sft_loss(logits, ids, loss_mask)[0].item())
