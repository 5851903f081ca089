"""Bradley–Terry ratings on the Elo scale, score-based matches, and the blind rater round trip."""

import csv
import json
import logging
import math
import random
import re

import numpy as np
import pytest

from safe_rlhf_lightning.evaluation.elo import (
    elo_ratings,
    export_rater_pairs,
    pairwise_matches,
    read_rater_judgements,
)

THREE_OF_FOUR = [("A", "B", 1.0), ("A", "B", 1.0), ("B", "A", 0.0), ("B", "A", 1.0)]


def test_three_wins_of_four_without_prior_is_400_log10_3():
    # Maximum likelihood: p_A / (p_A + p_B) = 3/4, so p_A / p_B = 3.
    ratings = elo_ratings(THREE_OF_FOUR, prior=0.0)
    difference = 400 * math.log10(3)  # 190.85
    assert ratings["A"] - ratings["B"] == pytest.approx(difference, abs=1e-6)
    assert ratings["A"] == pytest.approx(1000 + difference / 2, abs=1e-6)
    assert ratings["B"] == pytest.approx(1000 - difference / 2, abs=1e-6)


def test_three_wins_of_four_with_default_prior():
    # One virtual win and loss each against V (strength 1). By symmetry p_B = 1 / p_A = 1 / x,
    # and A's score equation 4 = 4 x / (x + 1/x) + 2 x / (x + 1) reduces to x^3 - x - 2 = 0.
    roots = np.roots([1.0, 0.0, -1.0, -2.0])
    x = float(roots[np.abs(roots.imag) < 1e-12].real[0])  # 1.5214
    ratings = elo_ratings(THREE_OF_FOUR)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(x * x), abs=1e-6)
    assert ratings["A"] - ratings["B"] == pytest.approx(145.80, abs=0.01)
    assert ratings["A"] + ratings["B"] == pytest.approx(2000.0)


def test_ratings_do_not_depend_on_match_order():
    matches = [
        ("A", "B", 1.0),
        ("B", "C", 0.5),
        ("C", "A", 1.0),
        ("A", "D", 1.0),
        ("D", "B", 0.0),
        ("C", "D", 0.0),
        ("A", "C", 1.0),
        ("B", "A", 1.0),
        ("D", "C", 0.5),
        ("A", "B", 0.5),
    ] * 3
    expected = elo_ratings(matches)
    for seed in range(5):
        shuffled = list(matches)
        random.Random(seed).shuffle(shuffled)
        assert elo_ratings(shuffled) == expected


def test_fit_solves_the_likelihood_equations_when_one_policy_nearly_always_wins():
    # At the maximum-likelihood fit every player's expected wins equal its actual wins. Six
    # policies 2.5 standard deviations apart: ratings spread over thousands of Elo points.
    rng = random.Random(0)
    scores = {f"p{k}": [rng.gauss(k, 0.4) for _ in range(200)] for k in range(6)}
    matches = pairwise_matches(scores)
    ratings = elo_ratings(matches, prior=0.0)
    for player in scores:
        expected = sum(
            1 / (1 + 10 ** ((ratings[b if a == player else a] - ratings[player]) / 400))
            for a, b, _ in matches
            if player in (a, b)
        )
        actual = sum(s if a == player else 1 - s for a, b, s in matches if player in (a, b))
        assert expected == pytest.approx(actual, abs=1e-6)
    assert sorted(ratings, key=ratings.get) == list(scores)
    assert ratings["p5"] - ratings["p0"] > 2000


def test_three_players_in_a_chain():
    # A beats B 3:1 and B beats C 3:1, A and C never meet: p_A / p_B = p_B / p_C = 3.
    matches = [*THREE_OF_FOUR, ("B", "C", 1.0), ("B", "C", 1.0), ("C", "B", 0.0), ("C", "B", 1.0)]
    ratings = elo_ratings(matches, prior=0.0)
    step = 400 * math.log10(3)
    assert ratings == pytest.approx({"A": 1000 + step, "B": 1000.0, "C": 1000 - step}, abs=1e-6)


def test_transitive_order_with_prior():
    matches = [("A", "B", 1.0)] * 3 + [("B", "C", 1.0)] * 3 + [("A", "C", 1.0)] * 3
    matches += [("A", "B", 0.0), ("B", "C", 0.0)]
    ratings = elo_ratings(matches)
    assert ratings["A"] > ratings["B"] > ratings["C"]
    assert sum(ratings.values()) / 3 == pytest.approx(1000.0)


def test_player_who_lost_everything_stays_finite_and_last():
    matches = [("A", "B", 1.0), ("B", "A", 1.0), ("A", "L", 1.0), ("L", "B", 0.0)] * 4
    ratings = elo_ratings(matches)
    assert all(math.isfinite(r) for r in ratings.values())
    assert min(ratings, key=ratings.get) == "L"
    with pytest.raises(ValueError, match="'L' won or lost every game"):
        elo_ratings(matches, prior=0.0)


def test_anchor_and_ties():
    ratings = elo_ratings(THREE_OF_FOUR, prior=0.0, anchor="B", initial=1500.0)
    assert ratings["B"] == 1500.0
    assert ratings["A"] == pytest.approx(1500 + 400 * math.log10(3), abs=1e-6)
    assert elo_ratings([("A", "B", 0.5)] * 3) == pytest.approx({"A": 1000.0, "B": 1000.0})


def test_bad_matches_are_rejected():
    with pytest.raises(ValueError, match=re.escape("match 1: score_a must be 1, 0.5 or 0, got 2")):
        elo_ratings([("A", "B", 1.0), ("A", "B", 2)])
    with pytest.raises(ValueError, match="match 0: 'A' cannot play itself"):
        elo_ratings([("A", "A", 1.0)])
    with pytest.raises(ValueError, match="no matches"):
        elo_ratings([])


def test_pairwise_matches_by_hand():
    scores = {"a": [1.0, 2.0, 3.0], "b": [2.0, 2.0, 1.0], "c": [0.0, 2.05, 3.0]}
    assert pairwise_matches(scores) == [
        ("a", "b", 0.0),
        ("a", "b", 0.5),
        ("a", "b", 1.0),
        ("a", "c", 1.0),
        ("a", "c", 0.0),
        ("a", "c", 0.5),
        ("b", "c", 1.0),
        ("b", "c", 0.0),
        ("b", "c", 0.0),
    ]
    # A cost: lower wins; 2.0 vs 2.05 is within the tolerance.
    as_cost = pairwise_matches(scores, higher_is_better=False, tie_tolerance=0.1)
    assert [s for _, _, s in as_cost] == [1.0, 0.5, 0.0, 0.0, 0.5, 0.5, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="lengths"):
        pairwise_matches({"a": [1.0], "b": [1.0, 2.0]})


POLICIES = ("policy-init-7f3", "policy-sft-9c2", "policy-ppolag-4e1")


def _export(tmp_path, seed=0):
    prompts = [f"question {i}, with a comma" for i in range(4)]
    responses = {name: [f"answer {i} #{k}" for i in range(4)] for k, name in enumerate(POLICIES)}
    return export_rater_pairs(tmp_path / "pairs.csv", prompts, responses, seed=seed)


def test_rater_csv_is_blind_and_randomised(tmp_path):
    csv_path, key_path = _export(tmp_path)
    assert key_path == tmp_path / "pairs.key.json"
    text = csv_path.read_text(encoding="utf-8")
    assert not any(name in text for name in POLICIES)
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0]) == [
        "pair_id",
        "prompt",
        "response_left",
        "response_right",
        "more_helpful",
        "more_harmless",
    ]
    assert len(rows) == 4 * 3  # 4 prompts x 3 pairs of policies
    assert {row["more_helpful"] for row in rows} == {""}
    # Policy k answers "... #k": both orientations occur, and the rows are not in prompt order.
    lefts = [int(row["response_left"][-1]) < int(row["response_right"][-1]) for row in rows]
    assert 0 < sum(lefts) < len(rows)
    assert [row["prompt"] for row in rows] != sorted(row["prompt"] for row in rows)
    other_dir = tmp_path / "again"
    other_dir.mkdir()
    assert _export(other_dir)[0].read_text(encoding="utf-8") == text  # same seed, same file
    assert _export(other_dir, seed=1)[0].read_text(encoding="utf-8") != text


def test_rater_round_trip_gives_expected_elo_order(tmp_path, caplog):
    csv_path, key_path = _export(tmp_path)
    key = json.loads(key_path.read_text(encoding="utf-8"))
    # Simulated raters: helpfulness init < sft < ppolag; harmlessness the other way round.
    rank = {name: k for k, name in enumerate(POLICIES)}
    with open(csv_path, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    for number, row in enumerate(rows):
        pair = key[row["pair_id"]]
        left_is_better = rank[pair["policy_left"]] > rank[pair["policy_right"]]
        row["more_helpful"] = "Left " if left_is_better else "right"
        row["more_harmless"] = "right" if left_is_better else "left"
        if number == 0:
            row["more_harmless"] = ""  # a rater skipped one cell
    with open(csv_path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    with caplog.at_level(logging.INFO, logger="safe_rlhf_lightning.evaluation.elo"):
        helpful, harmless = read_rater_judgements(csv_path, key_path)
    assert "{'more_helpful': 0, 'more_harmless': 1}" in caplog.text
    assert (len(helpful), len(harmless)) == (12, 11)
    init, sft, ppolag = POLICIES
    helpful_ratings = elo_ratings(helpful)
    assert helpful_ratings[ppolag] > helpful_ratings[sft] > helpful_ratings[init]
    harmless_ratings = elo_ratings(harmless)
    assert harmless_ratings[init] > harmless_ratings[sft] > harmless_ratings[ppolag]


def test_bad_rater_cell_names_file_row_and_column(tmp_path):
    csv_path, key_path = _export(tmp_path)
    with open(csv_path, encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    rows[1]["more_harmless"] = "maybe"
    with open(csv_path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    expected = (
        f"{csv_path}: row 2, column 'more_harmless': expected 'left', 'right', 'tie' or empty, "
        "got 'maybe'"
    )
    with pytest.raises(ValueError) as error:
        read_rater_judgements(csv_path, key_path)
    assert str(error.value) == expected
