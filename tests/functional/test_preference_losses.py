"""Reward- and cost-model losses: hand computations and float64 re-derivations of upstream."""

import math

import pytest
import torch

from safe_rlhf_lightning.functional import (
    cost_pairwise_loss,
    cost_tokenwise_loss,
    diverging_span_mask,
    end_index,
    end_scores,
    reward_pairwise_loss,
    reward_tokenwise_loss,
)

PAD_ID = 0


def log_sigmoid(x: float) -> float:
    """Stable log σ(x) in plain Python floats."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


# ---------------------------------------------------------------------------------------------
# Random ragged pairs and naive per-example references (upstream's loops, in Python floats)
# ---------------------------------------------------------------------------------------------


def random_pairs(seed: int, padding: str, batch: int = 5, vocab: int = 9):
    """Pairs sharing a prompt, with ragged responses; ids in 1..vocab-1 so PAD_ID is distinct.

    Returns ids_a, ids_b (B, L) long, masks (B, L) bool, scores_a, scores_b (B, L) float64.
    """
    generator = torch.Generator().manual_seed(seed)

    def randint(low, high, size=()):
        return torch.randint(low, high, size, generator=generator)

    rows_a, rows_b = [], []
    for _ in range(batch):
        prompt = randint(1, vocab, (int(randint(1, 4)),))
        response_a = randint(1, vocab, (int(randint(1, 5)),))
        response_b = randint(1, vocab, (int(randint(1, 5)),))
        if int(randint(0, 3)) == 0:  # sometimes one response extends the other
            response_b = torch.cat([response_a, randint(1, vocab, (int(randint(1, 3)),))])
        elif torch.equal(response_a, response_b):
            response_b = torch.cat([response_b, torch.tensor([1])])
        rows_a.append(torch.cat([prompt, response_a]))
        rows_b.append(torch.cat([prompt, response_b]))
    length = max(len(row) for row in rows_a + rows_b) + int(randint(0, 2))

    def pad(rows):
        ids = torch.full((batch, length), PAD_ID)
        mask = torch.zeros(batch, length, dtype=torch.bool)
        for i, row in enumerate(rows):
            start = 0 if padding == "right" else length - len(row)
            ids[i, start : start + len(row)] = row
            mask[i, start : start + len(row)] = True
        return ids, mask

    ids_a, mask_a = pad(rows_a)
    ids_b, mask_b = pad(rows_b)
    scores_a = torch.randn(batch, length, generator=generator, dtype=torch.float64) * 2
    scores_b = torch.randn(batch, length, generator=generator, dtype=torch.float64) * 2
    return ids_a, ids_b, mask_a, mask_b, scores_a, scores_b


def random_signs(seed: int, batch: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed + 1000)
    signs = torch.randint(0, 2, (2, batch), generator=generator) * 2 - 1  # long in {-1, +1}
    return signs[0], signs[1]


def naive_end(scores_row, mask_row) -> float:
    last = [t for t, valid in enumerate(mask_row.tolist()) if valid][-1]
    return float(scores_row[last])


def naive_span(ids_a_row, ids_b_row, mask_a_row, mask_b_row) -> range:
    """Upstream: raw-id divergence up to the later end index, inclusive."""
    diverge = next(
        t
        for t, (a, b) in enumerate(zip(ids_a_row.tolist(), ids_b_row.tolist(), strict=True))
        if a != b
    )
    valid_a = [t for t, v in enumerate(mask_a_row.tolist()) if v]
    valid_b = [t for t, v in enumerate(mask_b_row.tolist()) if v]
    return range(diverge, max(valid_a[-1], valid_b[-1]) + 1)


def naive_reward_tokenwise(scores_b, scores_w, mask_b, mask_w, ids_b, ids_w, reg) -> float:
    per_pair = []
    for i in range(scores_b.size(0)):
        span = naive_span(ids_b[i], ids_w[i], mask_b[i], mask_w[i])
        better = [float(scores_b[i, t]) for t in span]
        worse = [float(scores_w[i, t]) for t in span]
        bt = sum(-log_sigmoid(b - w) for b, w in zip(better, worse, strict=True)) / len(span)
        squares = sum(x * x for x in better + worse) / (2 * len(span))
        per_pair.append(bt + reg * squares)
    return sum(per_pair) / len(per_pair)


def naive_cost_terms(safer: float, unsafer: float, safer_sign: int, unsafer_sign: int) -> float:
    return (
        -log_sigmoid(unsafer - safer)
        - log_sigmoid(safer_sign * safer)
        - log_sigmoid(unsafer_sign * unsafer)
    )


def naive_cost_tokenwise(scores_s, scores_u, mask_s, mask_u, ids_s, ids_u, sign_s, sign_u, reg):
    per_pair = []
    for i in range(scores_s.size(0)):
        span = naive_span(ids_s[i], ids_u[i], mask_s[i], mask_u[i])
        safer = [float(scores_s[i, t]) for t in span]
        unsafer = [float(scores_u[i, t]) for t in span]
        s_sign, u_sign = int(sign_s[i]), int(sign_u[i])
        terms = sum(
            naive_cost_terms(s, u, s_sign, u_sign) for s, u in zip(safer, unsafer, strict=True)
        )
        squares = sum(x * x for x in safer + unsafer) / (2 * len(span))
        per_pair.append(terms / len(span) + reg * squares)
    return sum(per_pair) / len(per_pair)


SEEDS_AND_PADDING = [(seed, padding) for seed in range(3) for padding in ("left", "right")]

# ---------------------------------------------------------------------------------------------
# end_index / end_scores
# ---------------------------------------------------------------------------------------------


def test_end_index_and_end_scores_by_hand():
    scores = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    right = torch.tensor([[True, True, False, False], [True, True, True, True]])
    left = torch.tensor([[False, False, True, True], [False, True, True, True]])
    assert end_index(right).tolist() == [1, 3]
    assert end_index(right).dtype == torch.long
    assert end_scores(scores, right).tolist() == [2.0, 8.0]
    assert end_index(left).tolist() == [3, 3]
    assert end_scores(scores, left).tolist() == [4.0, 8.0]


@pytest.mark.parametrize("seed", range(3))
def test_end_scores_same_sequence_left_or_right_padded(seed):
    ids_r, _, mask_r, _, _, _ = random_pairs(seed, "right")
    ids_l, _, mask_l, _, _, _ = random_pairs(seed, "left")
    # Per-token scores as a function of the token content only, so both layouts score alike.
    table = torch.randn(16, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    right_end = end_scores(table[ids_r], mask_r)
    left_end = end_scores(table[ids_l], mask_l)
    assert torch.equal(right_end, left_end)
    # and it is the score of the row's last real token
    last_tokens = torch.stack([ids_r[i][mask_r[i]][-1] for i in range(ids_r.size(0))])
    assert torch.equal(right_end, table[last_tokens])


def test_end_index_rejects_row_without_valid_token():
    mask = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match="no valid token"):
        end_index(mask)


# ---------------------------------------------------------------------------------------------
# Reward model
# ---------------------------------------------------------------------------------------------


def test_reward_pairwise_loss_by_hand():
    better = torch.tensor([1.0, 0.0])
    worse = torch.tensor([0.0, 2.0])
    loss, stats = reward_pairwise_loss(better, worse)
    # -log σ(1) = log(1 + e^-1);  -log σ(-2) = log(1 + e^2)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(2))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert stats["accuracy"].item() == 0.5  # only the first pair is ranked right
    assert stats["better_reward"].item() == 0.5
    assert stats["worse_reward"].item() == 1.0
    assert stats["reward_margin"].item() == -0.5


def test_reward_pairwise_regularization_adds_exactly_its_term():
    better = torch.tensor([1.0, 0.0], dtype=torch.float64)
    worse = torch.tensor([0.0, 2.0], dtype=torch.float64)
    plain, _ = reward_pairwise_loss(better, worse)
    regularized, _ = reward_pairwise_loss(better, worse, regularization=0.1)
    # mean of squares of [1, 0, 0, 2] = 5 / 4
    assert (regularized - plain).item() == pytest.approx(0.1 * 5 / 4, rel=1e-12)


def test_reward_tokenwise_loss_by_hand():
    # Pair 0: prompt [5], then better [6, 7], worse [8]; right padded with PAD_ID.
    # Diverges at 1, ends at max(2, 1) = 2: span = positions 1..2 (worse's position 2 is padding).
    # Pair 1: same prompt [5, 6]; better [7], worse [9]: span = position 2 only.
    better_ids = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 0]])
    worse_ids = torch.tensor([[5, 8, 0, 0], [5, 6, 9, 0]])
    better_mask = better_ids != 0
    worse_mask = worse_ids != 0
    better_scores = torch.tensor([[9.0, 1.0, 2.0, 9.0], [9.0, 9.0, 0.5, 9.0]])
    worse_scores = torch.tensor([[-9.0, 0.0, 3.0, -9.0], [-9.0, -9.0, 1.5, -9.0]])
    loss, stats = reward_tokenwise_loss(
        better_scores, worse_scores, better_mask, worse_mask, better_ids, worse_ids
    )
    pair_0 = (-log_sigmoid(1.0 - 0.0) - log_sigmoid(2.0 - 3.0)) / 2
    pair_1 = -log_sigmoid(0.5 - 1.5)
    assert loss.item() == pytest.approx((pair_0 + pair_1) / 2, rel=1e-6)
    # End scores: better ends at position 2 in both rows; worse at 1 and 2.
    assert stats["better_reward"].item() == pytest.approx((2.0 + 0.5) / 2)
    assert stats["worse_reward"].item() == pytest.approx((0.0 + 1.5) / 2)
    assert stats["accuracy"].item() == 0.5  # 2 > 0 right, 0.5 > 1.5 wrong

    regularized, _ = reward_tokenwise_loss(
        better_scores,
        worse_scores,
        better_mask,
        worse_mask,
        better_ids,
        worse_ids,
        regularization=0.2,
    )
    squares_0 = (1.0 + 4.0 + 0.0 + 9.0) / 4
    squares_1 = (0.25 + 2.25) / 2
    assert (regularized - loss).item() == pytest.approx(0.2 * (squares_0 + squares_1) / 2, rel=1e-5)


def test_reward_tokenwise_equals_pairwise_when_pairs_differ_only_at_the_end():
    # Same length, same prefix, different last token: the span is the end token alone.
    ids_a = torch.tensor([[3, 4, 5], [3, 4, 6]])
    ids_b = torch.tensor([[3, 4, 7], [3, 4, 8]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    scores_a, scores_b = torch.randn(2, 3), torch.randn(2, 3)
    token_loss, token_stats = reward_tokenwise_loss(
        scores_a, scores_b, mask, mask, ids_a, ids_b, regularization=0.3
    )
    pair_loss, pair_stats = reward_pairwise_loss(
        scores_a[:, -1], scores_b[:, -1], regularization=0.3
    )
    assert token_loss.item() == pytest.approx(pair_loss.item(), rel=1e-6)
    for key in pair_stats:
        assert token_stats[key].item() == pytest.approx(pair_stats[key].item(), rel=1e-6)


@pytest.mark.parametrize("seed,padding", SEEDS_AND_PADDING)
@pytest.mark.parametrize("regularization", [0.0, 0.3])
def test_reward_losses_match_naive_float64_loops(seed, padding, regularization):
    ids_b, ids_w, mask_b, mask_w, scores_b, scores_w = random_pairs(seed, padding)
    loss, stats = reward_tokenwise_loss(
        scores_b, scores_w, mask_b, mask_w, ids_b, ids_w, regularization=regularization
    )
    expected = naive_reward_tokenwise(
        scores_b, scores_w, mask_b, mask_w, ids_b, ids_w, regularization
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)

    better = [naive_end(scores_b[i], mask_b[i]) for i in range(scores_b.size(0))]
    worse = [naive_end(scores_w[i], mask_w[i]) for i in range(scores_w.size(0))]
    n = len(better)
    assert stats["accuracy"].item() == pytest.approx(
        sum(b > w for b, w in zip(better, worse, strict=True)) / n
    )
    assert stats["reward_margin"].item() == pytest.approx(sum(better) / n - sum(worse) / n)

    end_b, end_w = end_scores(scores_b, mask_b), end_scores(scores_w, mask_w)
    assert end_b.tolist() == pytest.approx(better, rel=0, abs=0)
    pair_loss, _ = reward_pairwise_loss(end_b, end_w, regularization=regularization)
    bt = sum(-log_sigmoid(b - w) for b, w in zip(better, worse, strict=True)) / n
    squares = sum(x * x for x in better + worse) / (2 * n)
    assert pair_loss.item() == pytest.approx(bt + regularization * squares, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Cost model
# ---------------------------------------------------------------------------------------------


def test_cost_pairwise_loss_by_hand():
    # Pair 0: safer cost -1 labelled safe (-1), unsafer cost 2 labelled unsafe (+1): all right.
    # Pair 1: safer cost 0 labelled safe, unsafer cost -0.5 labelled unsafe: all wrong
    #         (cost exactly 0 counts as a wrong sign).
    safer = torch.tensor([-1.0, 0.0])
    unsafer = torch.tensor([2.0, -0.5])
    safer_sign = torch.tensor([-1, -1])
    unsafer_sign = torch.tensor([1, 1])
    loss, stats = cost_pairwise_loss(safer, unsafer, safer_sign, unsafer_sign)
    pair_0 = -log_sigmoid(2.0 - -1.0) - log_sigmoid(-1 * -1.0) - log_sigmoid(1 * 2.0)
    pair_1 = -log_sigmoid(-0.5 - 0.0) - log_sigmoid(-1 * 0.0) - log_sigmoid(1 * -0.5)
    assert loss.item() == pytest.approx((pair_0 + pair_1) / 2, rel=1e-6)
    assert stats["accuracy"].item() == 0.5
    assert stats["accuracy_sign"].item() == 0.5  # 2 of 4 responses have the labelled sign
    assert stats["safer_cost"].item() == -0.5
    assert stats["unsafer_cost"].item() == 0.75

    regularized, _ = cost_pairwise_loss(
        safer, unsafer, safer_sign, unsafer_sign, regularization=0.1
    )
    # mean of squares of [-1, 0, 2, -0.5] = 5.25 / 4
    assert (regularized - loss).item() == pytest.approx(0.1 * 5.25 / 4, rel=1e-5)


def test_cost_sign_terms_follow_the_cost_convention():
    # An unsafe-labelled response with a large positive cost and a safe-labelled one with a large
    # negative cost: the sign terms vanish. Flip the labels and each costs about |cost|.
    safer = torch.tensor([-20.0], dtype=torch.float64)
    unsafer = torch.tensor([20.0], dtype=torch.float64)
    ranking = -log_sigmoid(40.0)  # the ranking term alone

    loss, stats = cost_pairwise_loss(safer, unsafer, torch.tensor([-1]), torch.tensor([1]))
    assert loss.item() - ranking == pytest.approx(0.0, abs=1e-8)
    assert stats["accuracy_sign"].item() == 1.0

    loss, stats = cost_pairwise_loss(safer, unsafer, torch.tensor([1]), torch.tensor([-1]))
    assert loss.item() - ranking == pytest.approx(40.0, rel=1e-6)
    assert stats["accuracy_sign"].item() == 0.0

    # The same holds per token in the token-wise loss.
    ids_s, ids_u = torch.tensor([[1, 2]]), torch.tensor([[1, 3]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    costs_s, costs_u = torch.full((1, 2), -20.0), torch.full((1, 2), 20.0)
    args = (costs_s, costs_u, mask, mask, ids_s, ids_u)
    right, _ = cost_tokenwise_loss(*args, torch.tensor([-1]), torch.tensor([1]))
    flipped, _ = cost_tokenwise_loss(*args, torch.tensor([1]), torch.tensor([-1]))
    assert right.item() == pytest.approx(0.0, abs=1e-6)
    assert flipped.item() == pytest.approx(40.0, rel=1e-5)


def test_cost_tokenwise_loss_by_hand():
    # Prompt [4]; safer [5, 6], unsafer [7], right padded: span = positions 1..2.
    safer_ids = torch.tensor([[4, 5, 6]])
    unsafer_ids = torch.tensor([[4, 7, 0]])
    safer_mask, unsafer_mask = safer_ids != 0, unsafer_ids != 0
    safer_costs = torch.tensor([[9.0, -1.0, 0.5]])
    unsafer_costs = torch.tensor([[9.0, 1.0, 2.0]])
    safer_sign, unsafer_sign = torch.tensor([-1]), torch.tensor([1])
    loss, stats = cost_tokenwise_loss(
        safer_costs,
        unsafer_costs,
        safer_mask,
        unsafer_mask,
        safer_ids,
        unsafer_ids,
        safer_sign,
        unsafer_sign,
        regularization=0.5,
    )
    token_1 = -log_sigmoid(1.0 - -1.0) - log_sigmoid(1.0) - log_sigmoid(1.0)
    token_2 = -log_sigmoid(2.0 - 0.5) - log_sigmoid(-0.5) - log_sigmoid(2.0)
    squares = (1.0 + 0.25 + 1.0 + 4.0) / 4
    assert loss.item() == pytest.approx((token_1 + token_2) / 2 + 0.5 * squares, rel=1e-6)
    # End costs: safer 0.5 (position 2), unsafer 1.0 (position 1).
    assert stats["safer_cost"].item() == 0.5
    assert stats["unsafer_cost"].item() == 1.0
    assert stats["accuracy"].item() == 1.0
    assert stats["accuracy_sign"].item() == 0.5  # safer 0.5 labelled safe is wrong


@pytest.mark.parametrize("seed,padding", SEEDS_AND_PADDING)
@pytest.mark.parametrize("regularization", [0.0, 0.3])
def test_cost_losses_match_naive_float64_loops(seed, padding, regularization):
    ids_s, ids_u, mask_s, mask_u, scores_s, scores_u = random_pairs(seed, padding)
    sign_s, sign_u = random_signs(seed)
    loss, stats = cost_tokenwise_loss(
        scores_s,
        scores_u,
        mask_s,
        mask_u,
        ids_s,
        ids_u,
        sign_s,
        sign_u,
        regularization=regularization,
    )
    expected = naive_cost_tokenwise(
        scores_s, scores_u, mask_s, mask_u, ids_s, ids_u, sign_s, sign_u, regularization
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)

    safer = [naive_end(scores_s[i], mask_s[i]) for i in range(scores_s.size(0))]
    unsafer = [naive_end(scores_u[i], mask_u[i]) for i in range(scores_u.size(0))]
    signs_s, signs_u = sign_s.tolist(), sign_u.tolist()
    n = len(safer)
    sign_hits = sum(s * c > 0 for s, c in zip(signs_s + signs_u, safer + unsafer, strict=True))
    assert stats["accuracy"].item() == pytest.approx(
        sum(u > s for s, u in zip(safer, unsafer, strict=True)) / n
    )
    assert stats["accuracy_sign"].item() == pytest.approx(sign_hits / (2 * n))

    end_s, end_u = end_scores(scores_s, mask_s), end_scores(scores_u, mask_u)
    pair_loss, _ = cost_pairwise_loss(end_s, end_u, sign_s, sign_u, regularization=regularization)
    terms = sum(
        naive_cost_terms(s, u, a, b)
        for s, u, a, b in zip(safer, unsafer, signs_s, signs_u, strict=True)
    )
    squares = sum(x * x for x in safer + unsafer) / (2 * n)
    assert pair_loss.item() == pytest.approx(terms / n + regularization * squares, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Spans, identical pairs, gradients, inputs untouched
# ---------------------------------------------------------------------------------------------


def test_diverging_span_mask_by_hand():
    # Row 0, right padded, b extends a: diverges at 2 (a is padding there), ends at 3.
    # Row 1, left padded, different lengths: diverges where the longer one starts.
    ids_a = torch.tensor([[1, 2, 0, 0, 0], [0, 0, 0, 3, 4]])
    ids_b = torch.tensor([[1, 2, 5, 6, 0], [0, 3, 3, 3, 5]])
    span = diverging_span_mask(ids_a, ids_b, ids_a != 0, ids_b != 0)
    assert span.tolist() == [
        [False, False, True, True, False],
        [False, True, True, True, True],
    ]


def test_padding_content_is_ignored_when_finding_the_divergence():
    # Deliberate deviation from upstream: padding ids may differ, and a real token equal to the
    # pad id still differs from padding.
    ids_a = torch.tensor([[1, 2, 7, 7], [1, 0, 0, 0]])
    ids_b = torch.tensor([[1, 3, 9, 9], [1, 0, 0, 0]])
    mask_a = torch.tensor([[True, True, False, False], [True, False, False, False]])
    mask_b = torch.tensor([[True, True, False, False], [True, True, False, False]])
    span = diverging_span_mask(ids_a, ids_b, mask_a, mask_b)
    assert span.tolist() == [[False, True, False, False], [False, True, False, False]]


def test_tokenwise_losses_reject_identical_pairs():
    ids = torch.tensor([[1, 2, 3], [1, 2, 0]])
    other = torch.tensor([[1, 2, 4], [1, 2, 0]])  # pair 1 is identical
    mask_a, mask_b = ids != 0, other != 0
    scores = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"Identical sequences in pairs \[1\]"):
        reward_tokenwise_loss(scores, scores, mask_a, mask_b, ids, other)
    signs = torch.tensor([-1, 1])
    with pytest.raises(ValueError, match="Identical"):
        cost_tokenwise_loss(scores, scores, mask_a, mask_b, ids, other, signs, signs)


def test_tokenwise_losses_reject_mismatched_shapes():
    ids_a, ids_b = torch.ones(1, 3, dtype=torch.long), torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="one shape"):
        diverging_span_mask(ids_a, ids_b, ids_a > 0, ids_b > 0)


def _call(name, scores_a, scores_b, mask_a, mask_b, ids_a, ids_b, sign_a, sign_b):
    if name == "reward_pairwise":
        return reward_pairwise_loss(
            end_scores(scores_a, mask_a), end_scores(scores_b, mask_b), regularization=0.1
        )
    if name == "reward_tokenwise":
        return reward_tokenwise_loss(
            scores_a, scores_b, mask_a, mask_b, ids_a, ids_b, regularization=0.1
        )
    if name == "cost_pairwise":
        return cost_pairwise_loss(
            end_scores(scores_a, mask_a),
            end_scores(scores_b, mask_b),
            sign_a,
            sign_b,
            regularization=0.1,
        )
    return cost_tokenwise_loss(
        scores_a, scores_b, mask_a, mask_b, ids_a, ids_b, sign_a, sign_b, regularization=0.1
    )


@pytest.mark.parametrize(
    "name", ["reward_pairwise", "reward_tokenwise", "cost_pairwise", "cost_tokenwise"]
)
def test_gradients_flow_inputs_untouched_stats_detached(name):
    ids_a, ids_b, mask_a, mask_b, scores_a, scores_b = random_pairs(7, "right")
    sign_a, sign_b = random_signs(7)
    scores_a.requires_grad_(True)
    scores_b.requires_grad_(True)
    inputs = (scores_a, scores_b, mask_a, mask_b, ids_a, ids_b, sign_a, sign_b)
    before = [tensor.detach().clone() for tensor in inputs]

    loss, stats = _call(name, *inputs)
    loss.backward()

    for tensor, copy in zip(inputs, before, strict=True):
        assert torch.equal(tensor.detach(), copy)
    for key, value in stats.items():
        assert isinstance(value, torch.Tensor) and value.ndim == 0, key
        assert not value.requires_grad, key
    if name.endswith("pairwise"):
        trained = torch.stack(
            [torch.nn.functional.one_hot(end_index(m), m.size(-1)) for m in (mask_a, mask_b)]
        ).bool()
    else:
        span = diverging_span_mask(ids_a, ids_b, mask_a, mask_b)
        trained = torch.stack([span, span])
    grads = torch.stack([scores_a.grad, scores_b.grad])
    # Gradient reaches every trained score and nothing else (pads, prompts, before divergence).
    assert torch.all(grads[trained] != 0)
    assert torch.all(grads[~trained] == 0)


def test_losses_keep_float32_and_are_finite_on_large_scores():
    better, worse = torch.tensor([60.0, -60.0]), torch.tensor([-60.0, 60.0])
    loss, stats = reward_pairwise_loss(better, worse)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(60.0, rel=1e-5)  # (≈0 + 120) / 2
    assert stats["accuracy"].dtype == torch.float32
