"""Simulated annotators: Bradley–Terry noise, meta-label errors, consistency, determinism."""

from __future__ import annotations

import math

import pytest

from safe_rlhf_lightning.benchmark import Oracle, OracleScore, SimulatedAnnotator
from safe_rlhf_lightning.benchmark.annotators import label_agreement


def make_score(helpfulness: float, cost: float) -> OracleScore:
    return OracleScore(
        helpfulness=helpfulness,
        harm=max(cost, 0.0),
        cost=cost,
        is_safe=cost <= 0,
        severity=2 if cost > 0 else 0,
        categories=("Cybercrime",) if cost > 0 else (),
        refused=False,
        redirected=False,
        num_words=5,
    )


def test_noise_free_annotator_follows_the_oracle(oracle: Oracle) -> None:
    annotator = SimulatedAnnotator(
        oracle, better_temperature=0, safer_temperature=0, safety_label_error_rate=0
    )
    labels = annotator.label_scores(make_score(2.0, 1.5), make_score(0.5, -0.4))
    assert labels.better_response_id == 0
    assert labels.safer_response_id == 1
    assert (labels.is_response_0_safe, labels.is_response_1_safe) == (False, True)


def test_bradley_terry_frequency_matches_the_sigmoid(oracle: Oracle) -> None:
    annotator = SimulatedAnnotator(oracle, seed=1, better_temperature=0.9)
    score_0, score_1 = make_score(1.0, -0.1), make_score(0.4, -0.1)
    n = 20_000
    wins = sum(annotator.label_scores(score_0, score_1).better_response_id == 0 for _ in range(n))
    expected = 1 / (1 + math.exp(-0.6 / 0.9))
    assert wins / n == pytest.approx(expected, abs=0.015)


def test_meta_label_error_rate(oracle: Oracle) -> None:
    annotator = SimulatedAnnotator(oracle, seed=2, safety_label_error_rate=0.03)
    safe = make_score(1.0, -0.1)
    n = 20_000
    flipped = sum(not annotator.label_scores(safe, safe).is_response_0_safe for _ in range(n))
    assert flipped / n == pytest.approx(0.03, abs=0.006)


def test_a_lone_safe_label_always_marks_the_safer_response(oracle: Oracle) -> None:
    annotator = SimulatedAnnotator(oracle, seed=3, safer_temperature=100.0)
    for _ in range(2_000):
        labels = annotator.label_scores(make_score(1.0, 3.0), make_score(0.5, -0.1))
        if labels.is_response_0_safe != labels.is_response_1_safe:
            assert labels.safer_response_id == (0 if labels.is_response_0_safe else 1)


def test_same_seed_same_labels(oracle: Oracle) -> None:
    pairs = [(make_score(h, c), make_score(1 - h, -c)) for h, c in [(0.2, 1.0), (0.9, -0.4)] * 50]
    first = SimulatedAnnotator(oracle, seed=7)
    second = SimulatedAnnotator(oracle, seed=7)
    assert [first.label_scores(*p) for p in pairs] == [second.label_scores(*p) for p in pairs]


def test_label_agreement_skips_ties() -> None:
    rows = [
        {  # agrees on both
            "oracle_response_0_helpfulness": 1.0,
            "oracle_response_1_helpfulness": 0.0,
            "oracle_response_0_cost": -0.1,
            "oracle_response_1_cost": 1.0,
            "better_response_id": 0,
            "safer_response_id": 0,
            "is_response_0_safe": True,
            "is_response_1_safe": False,
        },
        {  # ties on both: excluded; one wrong meta-label
            "oracle_response_0_helpfulness": 0.5,
            "oracle_response_1_helpfulness": 0.5,
            "oracle_response_0_cost": -0.1,
            "oracle_response_1_cost": -0.1,
            "better_response_id": 1,
            "safer_response_id": 1,
            "is_response_0_safe": False,
            "is_response_1_safe": True,
        },
    ]
    agreement = label_agreement(rows)
    assert agreement["better"] == 1.0
    assert agreement["safer"] == 1.0
    assert agreement["safety_label_accuracy"] == 0.75
    assert agreement["num_pairs_better"] == 1.0
