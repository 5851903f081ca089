"""Arena summary of two policies: upstream safe-rlhf's counts, computed by hand on five prompts."""

import csv
import json

import pytest

from safe_rlhf_lightning.evaluation.arena import (
    arena_summary,
    arena_table_markdown,
    write_arena_csv,
)

# prompt | reward_a cost_a | reward_b cost_b | B better? | B safe? | A safe? | outcome
#   0    |  1.0   -1.0    |  2.0   -0.5    |   yes     |  yes    |  yes    | better and safe
#   1    |  1.0    0.5    |  3.0    1.0    |   yes     |  no     |  no     | better but unsafe
#   2    |  2.0    1.0    |  0.0    0.0    |   no      |  yes(0) |  no     | worse but safe
#   3    |  0.5   -2.0    |  0.5    2.0    |   no (tie)|  no     |  yes    | worse and unsafe
#   4    |  0.0   -1.0    | -1.0   -3.0    |   no      |  yes    |  yes    | worse but safe
REWARD_A = [1.0, 1.0, 2.0, 0.5, 0.0]
COST_A = [-1.0, 0.5, 1.0, -2.0, -1.0]
REWARD_B = [2.0, 3.0, 0.0, 0.5, -1.0]
COST_B = [-0.5, 1.0, 0.0, 2.0, -3.0]


def _summary():
    return arena_summary(REWARD_A, COST_A, REWARD_B, COST_B, names=("SFT", "PPO-Lag"))


def test_means_and_unsafe_shares_by_hand():
    summary = _summary()
    assert summary["names"] == ["SFT", "PPO-Lag"]
    assert summary["num_prompts"] == 5
    assert summary["a"]["reward_mean"] == pytest.approx(4.5 / 5)
    assert summary["a"]["cost_mean"] == pytest.approx(-2.5 / 5)
    assert summary["b"]["reward_mean"] == pytest.approx(4.5 / 5)
    assert summary["b"]["cost_mean"] == pytest.approx(-0.5 / 5)
    # A: costs 0.5 and 1.0 are unsafe; B: 1.0 and 2.0 (a cost of exactly 0 is safe).
    assert summary["a"]["unsafe_share"] == pytest.approx(2 / 5)
    assert summary["b"]["unsafe_share"] == pytest.approx(2 / 5)


def test_four_outcomes_match_upstream_definitions():
    outcomes = _summary()["outcomes"]
    counts = {key: value["count"] for key, value in outcomes.items()}
    # The reward tie on prompt 3 counts as "worse", as upstream's `not (reward_b > reward_a)`.
    assert counts == {
        "better_and_safe": 1,
        "better_but_unsafe": 1,
        "worse_but_safe": 2,
        "worse_and_unsafe": 1,
    }
    assert outcomes["worse_but_safe"]["share"] == pytest.approx(0.4)
    assert outcomes["better_and_safe"]["share"] == pytest.approx(0.2)


def test_transition_table_counts_and_win_rates():
    transitions = _summary()["transitions"]
    assert transitions == {
        # Prompts 0 (B better) and 4 (B worse).
        "a_safe_b_safe": {"count": 2, "b_win_rate": 0.5},
        # Prompt 3: a tie, which B does not win (strict, as upstream).
        "a_safe_b_unsafe": {"count": 1, "b_win_rate": 0.0},
        "a_unsafe_b_safe": {"count": 1, "b_win_rate": 0.0},
        "a_unsafe_b_unsafe": {"count": 1, "b_win_rate": 1.0},
    }


def test_overall_win_rates_count_ties_half():
    summary = _summary()
    # Reward: B wins prompts 0 and 1, ties 3, loses 2 and 4.
    assert summary["b_win_rate_reward"] == pytest.approx(2.5 / 5)
    # Cost (lower wins): B wins prompts 2 (0 < 1) and 4 (-3 < -1), loses 0, 1 and 3.
    assert summary["b_win_rate_cost"] == pytest.approx(2 / 5)
    assert summary["reward_ties"] == 1
    assert summary["cost_ties"] == 0


def test_empty_cell_has_no_win_rate_and_summary_is_json():
    # Both policies always safe: three cells are empty.
    summary = arena_summary([0.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-2.0, -0.5])
    assert summary["transitions"]["a_safe_b_safe"] == {"count": 2, "b_win_rate": 0.5}
    assert summary["transitions"]["a_unsafe_b_unsafe"] == {"count": 0, "b_win_rate": None}
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_mismatched_lengths_name_the_argument():
    with pytest.raises(ValueError, match="cost_b has 4 values but reward_a has 5"):
        arena_summary(REWARD_A, COST_A, REWARD_B, COST_B[:4])
    with pytest.raises(ValueError, match="reward_a is empty"):
        arena_summary([], [], [], [])
    with pytest.raises(ValueError, match="non-finite"):
        arena_summary([float("nan")], [0.0], [0.0], [0.0])


def test_markdown_table_shows_the_numbers():
    text = arena_table_markdown(_summary())
    assert "### SFT vs. PPO-Lag (5 prompts)" in text
    assert "| SFT | 0.9 | -0.5 | 40.0% |" in text
    assert "| PPO-Lag | 0.9 | -0.1 | 40.0% |" in text
    assert "| worse but safe | 2 | 40.0% |" in text
    assert "| SFT safe | 2 (50.0%) | 1 (0.0%) |" in text
    assert "| SFT unsafe | 1 (0.0%) | 1 (100.0%) |" in text
    assert "50.0% by reward, 40.0% by cost" in text


def test_arena_csv_round_trip(tmp_path):
    prompts = ["Hi, there?", "Line one\nline two", "café «quotes»", "x", "y"]
    responses_a = [f"a{i}" for i in range(5)]
    responses_b = [f'b "{i}"' for i in range(5)]
    path = write_arena_csv(
        tmp_path / "arena.csv",
        prompts,
        responses_a,
        responses_b,
        REWARD_A,
        COST_A,
        REWARD_B,
        COST_B,
        names=("SFT", "PPO"),
    )
    with open(path, encoding="utf-8", newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == [
        "prompt",
        "SFT_response",
        "SFT_reward",
        "SFT_cost",
        "PPO_response",
        "PPO_reward",
        "PPO_cost",
    ]
    assert [row[0] for row in rows] == prompts
    assert [row[4] for row in rows] == responses_b
    assert [float(row[6]) for row in rows] == COST_B
    assert [p.name for p in tmp_path.iterdir()] == ["arena.csv"]  # no temporary left behind


def test_arena_csv_rejects_mismatched_texts(tmp_path):
    with pytest.raises(ValueError, match="response_b has 4 values but reward_a has 5"):
        write_arena_csv(
            tmp_path / "arena.csv",
            ["p"] * 5,
            ["a"] * 5,
            ["b"] * 4,
            REWARD_A,
            COST_A,
            REWARD_B,
            COST_B,
        )
    assert not (tmp_path / "arena.csv").exists()
