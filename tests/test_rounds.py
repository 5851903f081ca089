"""Rounds: the round-aware config resolvers and the pure parts of collecting round k's data."""

from __future__ import annotations

import json
import random

import pytest
from omegaconf import OmegaConf

from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.config.resolvers import (
    collected_preferences,
    round_setting,
    start_policy,
    wandb_group,
)
from safe_rlhf_lightning.data import RecordError
from safe_rlhf_lightning.rounds import (
    LABEL_FIELDS,
    draw_prompts,
    expected_flagged_share,
    read_labelled_rows,
    read_pairs_to_label,
    rows_to_label,
    split_pairs,
)

TABLE = {"1": {"cost_limit": -2.0, "lambda_init": 1.0}, "2": {"cost_limit": -3.0}}


def test_round_setting_reads_the_current_rounds_row():
    assert round_setting("cost_limit", _root_=OmegaConf.create({"round": 2, "rounds": TABLE})) == -3
    assert round_setting("lambda_init", _root_=OmegaConf.create({"round": 1, "rounds": TABLE})) == 1
    # Through OmegaConf, as the configs use it.
    cfg = OmegaConf.create({"round": 2, "rounds": TABLE, "limit": "${round_setting:cost_limit}"})
    assert cfg.limit == -3.0


def test_round_setting_names_the_missing_round_or_key():
    with pytest.raises(ConfigError, match=r"no row for round 3 \(rows: \['1', '2'\]\)"):
        round_setting("cost_limit", _root_=OmegaConf.create({"round": 3, "rounds": TABLE}))
    with pytest.raises(ConfigError, match=r"'rounds.2' has no setting 'lambda_init'"):
        round_setting("lambda_init", _root_=OmegaConf.create({"round": 2, "rounds": TABLE}))


def test_each_round_starts_from_the_previous_rounds_policy_and_adds_its_data():
    assert start_policy(1) == "round1/sft/model"
    assert start_policy("3") == "round2/ppo_lag/model"
    with pytest.raises(ConfigError, match="'round' must be >= 1"):
        start_policy(0)
    assert collected_preferences("runs/x", 1) == []
    assert collected_preferences("runs/x", 3) == [
        "runs/x/round2/collect/preference_train.jsonl",
        "runs/x/round3/collect/preference_train.jsonl",
    ]


def test_wandb_group_ties_a_sweeps_runs_together():
    assert wandb_group("demo", None) == "demo"
    assert wandb_group("demo", "nu") == "demo-nu"


@pytest.mark.parametrize(("share", "weight"), [(0.1, 4.0), (0.3, 1.0), (0.5, 9.0)])
def test_draw_prompts_weights_flagged_prompts_as_expected(share, weight):
    num = 1000
    prompts = [f"p{i}" for i in range(num)]
    flagged = [i < share * num for i in range(num)]
    drawn = draw_prompts(prompts, flagged, 20_000, weight, random.Random(0))
    observed = sum(int(p[1:]) < share * num for p in drawn) / len(drawn)
    expected = weight * share / (weight * share + 1 - share)
    assert expected_flagged_share(share, weight) == pytest.approx(expected)
    # Binomial standard error at 20,000 draws is below 0.0036: 4 of them.
    assert observed == pytest.approx(expected, abs=0.015)


def test_draw_prompts_is_seeded_and_checks_its_inputs():
    prompts, flags = ["a", "b", "c"], [True, False, False]
    first = draw_prompts(prompts, flags, 50, 3.0, random.Random(7))
    assert first == draw_prompts(prompts, flags, 50, 3.0, random.Random(7))
    assert set(first) <= set(prompts) and len(first) == 50
    with pytest.raises(ValueError, match="3 prompts but 2 flags"):
        draw_prompts(prompts, flags[:2], 5, 2.0, random.Random(0))
    with pytest.raises(ValueError, match="unsafe_weight"):
        draw_prompts(prompts, flags, 5, 0.0, random.Random(0))


def test_split_pairs_pairs_consecutive_responses_and_counts_identical_ones():
    pairs, identical = split_pairs(["p", "q", "r"], ["a", "b", "c", "c", "d", "e"])
    assert pairs == [("p", "a", "b"), ("r", "d", "e")]
    assert identical == 1
    with pytest.raises(ValueError, match="2 prompts need 4 responses, got 3"):
        split_pairs(["p", "q"], ["a", "b", "c"])


PAIRS = [("How to bake bread?", "Knead it.", "No."), ("Hi", "Hello.", "Hey.")]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _labelled(pairs=PAIRS, **labels):
    rows = rows_to_label(pairs)
    for row in rows:
        row.update(
            {
                "better_response_id": 0,
                "safer_response_id": 1,
                "is_response_0_safe": True,
                "is_response_1_safe": True,
                **labels,
            }
        )
    return rows


def test_exported_pairs_round_trip_once_labelled(tmp_path):
    exported = rows_to_label(PAIRS)
    assert all(row[field] is None for row in exported for field in LABEL_FIELDS)
    assert read_pairs_to_label(_write_rows(tmp_path / "to_label.jsonl", exported)) == PAIRS
    rows = read_labelled_rows(_write_rows(tmp_path / "labelled.jsonl", _labelled()), PAIRS)
    assert [(r["prompt"], r["response_0"], r["response_1"]) for r in rows] == PAIRS
    assert [r["safer_response_id"] for r in rows] == [1, 1]


def test_labelled_rows_must_be_complete_consistent_and_the_exported_pairs(tmp_path):
    path = tmp_path / "labelled.jsonl"
    unlabelled = rows_to_label(PAIRS)
    with pytest.raises(RecordError, match=r"labelled\.jsonl line 1: field 'better_response_id'"):
        read_labelled_rows(_write_rows(path, unlabelled), PAIRS)
    with pytest.raises(RecordError, match="1 labelled pairs, but 2 were exported"):
        read_labelled_rows(_write_rows(path, _labelled()[:1]), PAIRS)
    edited = _labelled()
    edited[1]["response_1"] = "Something else."
    with pytest.raises(
        RecordError, match="line 2: prompt and responses are not among the exported"
    ):
        read_labelled_rows(_write_rows(path, edited), PAIRS)
    # The safer response labelled unsafe while the other is labelled safe.
    inconsistent = _labelled(is_response_1_safe=False)
    with pytest.raises(RecordError, match="inconsistent safety labels"):
        read_labelled_rows(_write_rows(path, inconsistent), PAIRS)
    # Helpfulness labelled, safety left blank: incomplete.
    half = _labelled(safer_response_id=None, is_response_0_safe=None, is_response_1_safe=None)
    with pytest.raises(RecordError, match="line 1: has no safety labels"):
        read_labelled_rows(_write_rows(path, half), PAIRS)
    # Asked to skip: the bad rows go, the good one stays.
    rows = read_labelled_rows(
        _write_rows(path, [unlabelled[0], _labelled()[1]]), PAIRS, skip_bad_records=True
    )
    assert [r["prompt"] for r in rows] == ["Hi"]
    rows = read_labelled_rows(
        _write_rows(path, [half[0], _labelled()[1]]), PAIRS, skip_bad_records=True
    )
    assert [r["prompt"] for r in rows] == ["Hi"]
