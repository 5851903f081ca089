"""DPO, cDPO, IPO, KTO and C-DPO's labels: hand values, float64 loops and their optima."""

from __future__ import annotations

import math

import pytest
import torch

from safe_rlhf_lightning.functional import (
    best_and_worst,
    constrained_preference,
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return math.exp(log_sigmoid(x))


def random_pairs(seed: int, batch: int = 6):
    """Four (B,) float64 tensors of summed log-probs: policy chosen/rejected, reference ditto."""
    g = torch.Generator().manual_seed(seed)
    return [-5 + 2 * torch.randn(batch, generator=g, dtype=torch.float64) for _ in range(4)]


def naive_h(pc, pr, rc, rr, i) -> float:
    return (pc[i].item() - rc[i].item()) - (pr[i].item() - rr[i].item())


# (policy chosen, policy rejected, ref chosen, ref rejected): h = (-1 + 2) - (-3 + 2) = 2, and a
# second pair ranked the wrong way round: h = (-4 + 2) - (-2 + 2) = -2.
HAND = [torch.tensor(v) for v in ([-1.0, -4.0], [-3.0, -2.0], [-2.0, -2.0], [-2.0, -2.0])]


def test_dpo_by_hand():
    loss, stats = dpo_loss(*HAND, beta=0.5)
    # β·h = ±1: (-log σ(1) - log σ(-1)) / 2
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # implicit rewards β·log-ratio: chosen 0.5, -1; rejected -0.5, 0
    assert stats["chosen_reward"].item() == pytest.approx((0.5 - 1.0) / 2)
    assert stats["rejected_reward"].item() == pytest.approx((-0.5 + 0.0) / 2)
    assert stats["reward_margin"].item() == pytest.approx(0.0)  # margins +1 and -1
    assert stats["accuracy"].item() == 0.5


def test_cdpo_label_smoothing_by_hand():
    loss, _ = dpo_loss(*[x[:1] for x in HAND], beta=0.5, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-1)) + 0.1 * math.log1p(math.exp(1))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_dpo_matches_a_float64_loop(seed, label_smoothing):
    pc, pr, rc, rr = random_pairs(seed)
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=label_smoothing)
    terms, margins = [], []
    for i in range(len(pc)):
        x = 0.3 * naive_h(pc, pr, rc, rr, i)
        terms.append(-(1 - label_smoothing) * log_sigmoid(x) - label_smoothing * log_sigmoid(-x))
        margins.append(x)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    assert stats["reward_margin"].item() == pytest.approx(sum(margins) / len(margins), rel=1e-6)
    assert stats["accuracy"].item() == pytest.approx(sum(m > 0 for m in margins) / len(margins))


def test_dpo_per_pair_label_smoothing_matches_a_float64_loop():
    pc, pr, rc, rr = random_pairs(seed=4)
    eps = torch.linspace(0.0, 0.45, len(pc), dtype=torch.float64)
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=eps)
    terms = []
    for i in range(len(pc)):
        x, e = 0.3 * naive_h(pc, pr, rc, rr, i), eps[i].item()
        terms.append(-(1 - e) * log_sigmoid(x) - e * log_sigmoid(-x))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)


def test_dpo_at_the_reference_is_log_two_with_no_accuracy():
    pc, pr, _, _ = random_pairs(seed=9)
    loss, stats = dpo_loss(pc, pr, pc, pr, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-12)
    assert stats["reward_margin"].item() == 0.0 and stats["accuracy"].item() == 0.0


def test_dpo_gradient_by_hand_and_none_into_the_reference():
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-3.0], requires_grad=True)
    rc, rr = torch.tensor([-2.0], requires_grad=True), torch.tensor([-2.0], requires_grad=True)
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.5)
    loss.backward()
    # dL/d(chosen) = -β·σ(-β·h) with β·h = 1; the rejected gets the opposite
    assert pc.grad.item() == pytest.approx(-0.5 * sigmoid(-1.0), rel=1e-6)
    assert pr.grad.item() == pytest.approx(0.5 * sigmoid(-1.0), rel=1e-6)
    assert rc.grad is None and rr.grad is None
    assert not any(value.requires_grad for value in stats.values())


@pytest.mark.parametrize("label_smoothing", [0.1, 0.3])
def test_cdpo_stops_at_the_margin_its_noise_rate_implies(label_smoothing):
    """cDPO's optimum is σ(β·h) = 1 - ε, i.e. β·h = log((1 - ε) / ε): zero gradient there."""
    beta = 0.4
    h = math.log((1 - label_smoothing) / label_smoothing) / beta
    pc = torch.tensor([h], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    loss, _ = dpo_loss(pc, zero, zero, zero, beta=beta, label_smoothing=label_smoothing)
    loss.backward()
    assert pc.grad.item() == pytest.approx(0.0, abs=1e-12)


def test_ipo_by_hand():
    first = [x[:1] for x in HAND]  # h = 2
    assert ipo_loss(*first, beta=0.5)[0].item() == pytest.approx((2 - 1) ** 2)
    assert ipo_loss(*first, beta=0.25)[0].item() == pytest.approx(0.0)  # 1/(2β) = 2 = h
    loss, stats = ipo_loss(*HAND, beta=0.5)  # h = 2 and -2
    assert loss.item() == pytest.approx(((2 - 1) ** 2 + (-2 - 1) ** 2) / 2)
    assert stats["accuracy"].item() == 0.5


@pytest.mark.parametrize("seed", range(3))
def test_ipo_matches_a_float64_loop(seed):
    pc, pr, rc, rr = random_pairs(seed)
    loss, _ = ipo_loss(pc, pr, rc, rr, beta=0.2)
    terms = [(naive_h(pc, pr, rc, rr, i) - 1 / (2 * 0.2)) ** 2 for i in range(len(pc))]
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)


def test_ipo_gradient_vanishes_at_its_target_margin():
    pc = torch.tensor([2.5], dtype=torch.float64, requires_grad=True)  # h = 1/(2·0.2) = 2.5
    zero = torch.zeros(1, dtype=torch.float64)
    loss, _ = ipo_loss(pc, zero, zero, zero, beta=0.2)
    loss.backward()
    assert loss.item() == 0.0 and pc.grad.item() == 0.0


def test_kto_reference_point_by_hand():
    policy = torch.tensor([0.5, -1.5, 2.0], requires_grad=True)
    reference = torch.tensor([0.0, 0.0, 0.0])
    z0 = kto_reference_point(policy, reference)
    assert z0.item() == pytest.approx(1.0 / 3.0)
    assert not z0.requires_grad
    # a negative mean log-ratio is clamped: KL is never negative
    assert kto_reference_point(-policy, reference).item() == 0.0


def test_kto_by_hand():
    logprobs = torch.tensor([-1.0, -3.0])
    ref = torch.tensor([-2.2, -2.2])  # log-ratios 1.2 and -0.8
    desirable = torch.tensor([True, False])
    loss, stats = kto_loss(
        logprobs, ref, desirable, torch.tensor(0.2), beta=0.5, undesirable_weight=2.0
    )
    # desirable: 1 - σ(0.5·(1.2 - 0.2)) = σ(-0.5); undesirable: 2·(1 - σ(0.5·(0.2 + 0.8)))
    expected = (sigmoid(-0.5) + 2 * sigmoid(-0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["chosen_reward"].item() == pytest.approx(0.6)
    assert stats["rejected_reward"].item() == pytest.approx(-0.4)
    assert stats["reward_margin"].item() == pytest.approx(1.0)
    assert stats["reference_point"].item() == pytest.approx(0.2)


@pytest.mark.parametrize("seed", range(3))
def test_kto_matches_a_float64_loop(seed):
    g = torch.Generator().manual_seed(seed)
    logprobs, ref = random_pairs(seed)[:2]
    desirable = torch.rand(len(logprobs), generator=g) > 0.4
    z0 = kto_reference_point(*random_pairs(seed + 10)[2:])
    loss, _ = kto_loss(
        logprobs, ref, desirable, z0, beta=0.1, desirable_weight=1.0, undesirable_weight=1.33
    )
    z, terms = z0.item(), []
    for i in range(len(logprobs)):
        r = logprobs[i].item() - ref[i].item()
        if desirable[i]:
            terms.append(1.0 - 1.0 * sigmoid(0.1 * (r - z)))
        else:
            terms.append(1.33 - 1.33 * sigmoid(0.1 * (z - r)))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-10)


def test_kto_trains_the_policy_only_and_copes_with_one_kind_of_example():
    logprobs = torch.tensor([-1.0, -2.0], requires_grad=True)
    ref = torch.tensor([-1.5, -1.5], requires_grad=True)
    z0 = torch.tensor(0.1, requires_grad=True)
    loss, stats = kto_loss(logprobs, ref, torch.ones(2, dtype=torch.bool), z0, beta=0.5)
    loss.backward()
    assert (logprobs.grad < 0).all()  # desirable: raise their likelihood
    assert ref.grad is None and z0.grad is None
    assert stats["rejected_reward"].item() == 0.0  # no undesirable example: 0, not NaN


def test_constrained_preference_by_hand():
    reward_0, cost_0 = torch.tensor([1.0, 1.5, 2.0]), torch.tensor([2.0, 1.0, -1.0])
    reward_1, cost_1 = torch.tensor([0.0, 0.5, 2.0]), torch.tensor([-1.0, -1.0, -1.0])
    out = constrained_preference(reward_0, cost_0, reward_1, cost_1, 0.5)
    # R - λC: pair 0: 0 vs 0.5; pair 1: 1 vs 1 (tie); pair 2: 2.5 vs 2.5 (tie)
    assert out.margin.tolist() == [-0.5, 0.0, 0.0]
    assert out.first_preferred.tolist() == [False, False, False]
    assert out.tie.tolist() == [False, True, True]
    # without the constraint the more helpful (and unsafe) first response of pair 0 wins
    unconstrained = constrained_preference(reward_0, cost_0, reward_1, cost_1, 0.0)
    assert unconstrained.first_preferred.tolist() == [True, True, False]
    assert unconstrained.tie.tolist() == [False, False, True]


def test_constrained_preference_tie_tolerance():
    out = constrained_preference(
        torch.tensor([1.0, 1.0]),
        torch.zeros(2),
        torch.tensor([0.95, 0.5]),
        torch.zeros(2),
        1.0,
        tie_tolerance=0.1,
    )
    assert out.tie.tolist() == [True, False]
    assert out.first_preferred.tolist() == [False, True]


@pytest.mark.parametrize("seed", range(3))
def test_constrained_preference_matches_a_float64_loop(seed):
    g = torch.Generator().manual_seed(seed)
    r0, c0, r1, c1 = (torch.randn(8, generator=g, dtype=torch.float64) for _ in range(4))
    out = constrained_preference(r0, c0, r1, c1, 1.7)
    for i in range(8):
        a = r0[i].item() - 1.7 * c0[i].item()
        b = r1[i].item() - 1.7 * c1[i].item()
        assert out.margin[i].item() == pytest.approx(a - b, rel=1e-12)
        assert bool(out.first_preferred[i]) == (a > b)
        assert not out.tie[i]


def test_best_and_worst_by_hand():
    # Two prompts of three responses each, adjacent rows; the first index wins a tie.
    scores = torch.tensor([0.5, -1.0, 2.0, 3.0, 3.0, 3.0])
    best, worst = best_and_worst(scores, 3)
    assert best.tolist() == [2, 3] and worst.tolist() == [1, 3]


@pytest.mark.parametrize("seed", range(3))
def test_best_and_worst_matches_a_loop(seed):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(5 * 4, generator=generator, dtype=torch.float64)
    best, worst = best_and_worst(scores, 4)
    for prompt in range(5):
        rows = list(range(prompt * 4, prompt * 4 + 4))
        assert best[prompt] == max(rows, key=lambda r: scores[r])
        assert worst[prompt] == min(rows, key=lambda r: scores[r])
