"""The k3 KL, GRPO and Dr. GRPO aggregations, and the critic-free actor loss: by hand and loops."""

from __future__ import annotations

import math

import pytest
import torch

from safe_rlhf_lightning.functional import (
    clipped_surrogate,
    fixed_length_token_sum,
    group_policy_loss,
    k3_kl,
    k3_kl_loss,
    ppo_actor_loss,
    sequence_masked_mean,
)


def ragged(seed: int, batch: int = 5, length: int = 7):
    """A right-padded (B, T) mask with rows of 1..T tokens, and a float64 sampler."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    mask = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    rand = lambda: torch.randn(batch, length, generator=g, dtype=torch.float64)  # noqa: E731
    return mask, lengths.tolist(), rand


def naive_k3(logprob: float, ref_logprob: float) -> float:
    x = ref_logprob - logprob
    return math.exp(x) - x - 1.0


def naive_surrogate(logprob: float, old: float, advantage: float, eps: float) -> float:
    ratio = math.exp(logprob - old)
    return -min(ratio * advantage, min(max(ratio, 1 - eps), 1 + eps) * advantage)


def test_k3_by_hand():
    logprobs = torch.tensor([[0.0, math.log(0.5), -1.0]])
    ref = torch.tensor([[math.log(0.5), math.log(0.5), -3.0]])
    # x = log 0.5: 0.5 - log 0.5 - 1;  x = 0: 0;  x = -2: e^-2 + 2 - 1
    expected = torch.tensor([[0.5 + math.log(2) - 1, 0.0, math.exp(-2) + 1]])
    torch.testing.assert_close(k3_kl(logprobs, ref), expected)


def test_k3_matches_a_float64_loop_and_is_never_negative():
    _, _, rand = ragged(seed=0)
    logprobs, ref = rand(), rand()
    out = k3_kl(logprobs, ref)
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            expected = naive_k3(logprobs[b, t].item(), ref[b, t].item())
            assert out[b, t].item() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert (out >= 0).all()


def test_k3_keeps_its_precision_in_float32_when_the_policies_are_close():
    logprobs = torch.tensor([-2.0, -1.0, -0.5])
    ref = logprobs + torch.tensor([1e-4, -3e-4, 2e-5])
    exact = k3_kl(logprobs.double(), ref.double())  # ~ x^2 / 2
    torch.testing.assert_close(k3_kl(logprobs, ref).double(), exact, rtol=0.05, atol=0.0)


def test_k3_is_an_unbiased_estimate_of_kl_on_sampled_tokens():
    g = torch.Generator().manual_seed(0)
    policy = torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64)
    reference = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    true_kl = (policy * (policy / reference).log()).sum().item()
    tokens = torch.multinomial(policy, 200_000, replacement=True, generator=g)
    samples = k3_kl(policy.log()[tokens], reference.log()[tokens])
    standard_error = samples.std().item() / math.sqrt(len(samples))
    assert samples.mean().item() == pytest.approx(true_kl, abs=4 * standard_error)


def test_k3_kl_loss_by_hand_and_no_gradient_into_the_reference():
    logprobs = torch.tensor([[0.0, 0.0], [-1.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[math.log(0.5), 0.0], [-3.0, 5.0]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    loss, stats = k3_kl_loss(logprobs, ref, mask, kl_coef=0.1)
    row_0 = (0.5 + math.log(2) - 1 + 0.0) / 2
    row_1 = math.exp(-2) + 1  # the padded token's huge k3 is ignored
    assert stats["kl"].item() == pytest.approx((row_0 + row_1) / 2, rel=1e-6)
    assert loss.item() == pytest.approx(0.1 * (row_0 + row_1) / 2, rel=1e-6)
    loss.backward()
    assert ref.grad is None
    assert logprobs.grad[1, 1].item() == 0.0


def test_k3_kl_loss_matches_a_float64_loop():
    mask, lengths, rand = ragged(seed=1)
    logprobs, ref = rand(), rand()
    loss, _ = k3_kl_loss(logprobs, ref, mask, kl_coef=0.05)
    rows = [
        sum(naive_k3(logprobs[b, t].item(), ref[b, t].item()) for t in range(n)) / n
        for b, n in enumerate(lengths)
    ]
    assert loss.item() == pytest.approx(0.05 * sum(rows) / len(rows), rel=1e-12)


def test_fixed_length_token_sum_by_hand():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    # (1 + 2 + 3 + 4) / (2 rows * 4 tokens); GRPO's sequence mean would give (2 + 4) / 2
    assert fixed_length_token_sum(values, mask, max_length=4).item() == pytest.approx(10 / 8)


def test_fixed_length_token_sum_matches_a_loop_and_weighs_every_token_alike():
    mask, lengths, rand = ragged(seed=2)
    values = rand().requires_grad_(True)
    out = fixed_length_token_sum(values, mask, max_length=16)
    rows = [sum(values[b, t].item() for t in range(n)) / 16 for b, n in enumerate(lengths)]
    assert out.item() == pytest.approx(sum(rows) / len(rows), rel=1e-12)
    out.backward()
    weights = values.grad[mask]
    assert torch.equal(weights, torch.full_like(weights, 1 / (len(lengths) * 16)))
    assert values.grad[~mask].eq(0).all()


def test_fixed_length_token_sum_rejects_a_zero_length():
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        fixed_length_token_sum(torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), max_length=0)


def test_clipped_surrogate_matches_a_loop_and_gives_ppo_actor_loss_exactly():
    mask, _, rand = ragged(seed=3)
    logprobs, old, adv = rand() * 0.3, rand() * 0.3, rand()
    out = clipped_surrogate(logprobs, old, adv, clip_range=0.2)
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            expected = naive_surrogate(
                logprobs[b, t].item(), old[b, t].item(), adv[b, t].item(), 0.2
            )
            assert out[b, t].item() == pytest.approx(expected, rel=1e-12)
    loss, _ = ppo_actor_loss(logprobs.float(), old.float(), adv.float(), mask, clip_range=0.2)
    per_token = clipped_surrogate(logprobs.float(), old.float(), adv.float(), clip_range=0.2)
    assert torch.equal(sequence_masked_mean(per_token, mask), loss)


def test_group_policy_loss_without_kl_is_ppo_actor_loss():
    mask, _, rand = ragged(seed=4)
    logprobs, old, ref, adv = (rand().float() * 0.3 for _ in range(4))
    loss, stats = group_policy_loss(logprobs, old, ref, adv, mask, clip_range=0.2, kl_coef=0.0)
    ppo_loss, ppo_stats = ppo_actor_loss(logprobs, old, adv, mask, clip_range=0.2)
    assert torch.equal(loss, ppo_loss)
    for key in ("clip_fraction", "approx_kl"):
        assert torch.equal(stats[key], ppo_stats[key])


@pytest.mark.parametrize("max_length", [None, 9])
def test_group_policy_loss_matches_a_float64_loop(max_length):
    mask, lengths, rand = ragged(seed=5)
    logprobs, old, ref, adv = rand() * 0.3, rand() * 0.3, rand() * 0.3, rand()
    loss, stats = group_policy_loss(
        logprobs, old, ref, adv, mask, clip_range=0.2, kl_coef=0.04, max_length=max_length
    )
    rows, kls = [], []
    for b, n in enumerate(lengths):
        terms = [
            naive_surrogate(logprobs[b, t].item(), old[b, t].item(), adv[b, t].item(), 0.2)
            + 0.04 * naive_k3(logprobs[b, t].item(), ref[b, t].item())
            for t in range(n)
        ]
        rows.append(sum(terms) / (n if max_length is None else max_length))
        kls.append(sum(naive_k3(logprobs[b, t].item(), ref[b, t].item()) for t in range(n)) / n)
    assert loss.item() == pytest.approx(sum(rows) / len(rows), rel=1e-12)
    assert stats["kl"].item() == pytest.approx(sum(kls) / len(kls), rel=1e-12)


def test_group_policy_loss_trains_the_policy_only():
    mask, _, rand = ragged(seed=6)
    logprobs = (rand() * 0.3).requires_grad_(True)
    old, ref = rand() * 0.3, (rand() * 0.3).requires_grad_(True)
    adv = rand()
    before = logprobs.detach().clone()
    loss, stats = group_policy_loss(logprobs, old, ref, adv, mask, clip_range=0.2, kl_coef=0.1)
    loss.backward()
    assert ref.grad is None
    assert logprobs.grad[~mask].eq(0).all() and logprobs.grad[mask].abs().sum() > 0
    assert not any(value.requires_grad for value in stats.values())
    assert torch.equal(logprobs.detach(), before)
