"""Mixing sources by proportion, and skipping bad records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from safe_rlhf_lightning.data import (
    DatasetSpec,
    RecordError,
    check_sources,
    load_records,
    load_records_with_stats,
    mix_sources,
    no_usable_records,
)

from .conftest import preference_row, supervised_row, write_jsonl


@pytest.fixture
def two_sources(tmp_path: Path) -> tuple[Path, Path]:
    first = write_jsonl(tmp_path / "a.jsonl", (supervised_row(i, topic="a") for i in range(10)))
    second = write_jsonl(tmp_path / "b.jsonl", (supervised_row(i, topic="b") for i in range(4)))
    return first, second


@pytest.mark.parametrize(("proportion", "expected"), [(0.5, 5), (1, 10), (2.5, 25), (0.06, 1)])
def test_proportion_gives_round_p_times_n(
    two_sources: tuple[Path, Path], proportion: float, expected: int
) -> None:
    records = load_records([f"{two_sources[0]}:{proportion}"], "supervised")
    assert len(records) == expected


def test_proportion_above_one_repeats_the_whole_source(two_sources: tuple[Path, Path]) -> None:
    records = load_records([f"{two_sources[0]}:2.5"], "supervised")
    prompts = [record.prompt for record in records]
    assert prompts[:10] == prompts[10:20] == [supervised_row(i)["prompt"] for i in range(10)]
    assert len(set(prompts[20:])) == 5  # the remainder: distinct, without replacement


def test_subset_is_deterministic_by_seed(two_sources: tuple[Path, Path]) -> None:
    spec = f"{two_sources[0]}:0.5"

    def prompts(seed: int) -> list[str]:
        return [record.prompt for record in load_records([spec], "supervised", seed=seed)]

    assert prompts(1) == prompts(1)
    assert any(prompts(1) != prompts(seed) for seed in range(2, 6))


def test_sources_are_concatenated_in_spec_order(two_sources: tuple[Path, Path]) -> None:
    first, second = two_sources
    records = load_records([f"{second}:0.5", str(first)], "supervised")
    assert [record.extra["topic"] for record in records] == ["b"] * 2 + ["a"] * 10
    records = load_records([DatasetSpec(str(first)), DatasetSpec(str(second), 2)], "supervised")
    assert [record.extra["topic"] for record in records] == ["a"] * 10 + ["b"] * 8


def test_stats_per_source(two_sources: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    first, second = two_sources
    with caplog.at_level(logging.INFO, logger="safe_rlhf_lightning.data"):
        records, stats = load_records_with_stats([f"{first}:0.5", f"{second}:2"], "supervised")
    assert len(records) == 13
    assert [(s.num_valid, s.num_skipped, s.num_selected) for s in stats] == [(10, 0, 5), (4, 0, 8)]
    assert stats[0].label == str(first)
    assert "proportion 0.5 -> 5" in caplog.text


def test_mix_sources_spawns_one_generator_per_source() -> None:
    # Adding a source after another does not change what the first one selects.
    alone = mix_sources([list(range(100))], [0.3], seed=7)
    with_other = mix_sources([list(range(100)), list(range(5))], [0.3, 0.5], seed=7)
    assert alone[0] == with_other[0]
    assert len(with_other[1]) == round(2.5)
    with pytest.raises(ValueError, match="proportion must be > 0"):
        mix_sources([[1]], [0.0], seed=0)
    assert mix_sources([[]], [2.0], seed=0) == [[]]


@pytest.fixture
def pairs_with_bad_lines(tmp_path: Path) -> Path:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            preference_row(0),
            preference_row(1, better_response_id=3),
            preference_row(2),
            preference_row(3, prompt=""),
        ],
    )
    with path.open("ab") as file:
        file.write(b"[1]\n" + b'{"prompt": "\xff"}\n')  # not an object, not UTF-8
    return path


def test_bad_records_raise_by_default(pairs_with_bad_lines: Path) -> None:
    with pytest.raises(RecordError, match="line 2: field 'better_response_id'"):
        load_records([str(pairs_with_bad_lines)], "preference")


def test_skip_mode_counts_and_warns(
    pairs_with_bad_lines: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="safe_rlhf_lightning.data"):
        records, stats = load_records_with_stats(
            [str(pairs_with_bad_lines)], "preference", skip_bad_records=True
        )
    assert [record.origin.location for record in records] == ["line 1", "line 3"]
    assert stats[0].num_skipped == 4 and stats[0].num_valid == 2
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING).getMessage()
    assert "skipped 4 bad of 6 rows" in warning
    assert "line 2: field 'better_response_id'" in warning  # the first error is shown


def test_read_as_prompts_only_the_prompt_must_be_valid(pairs_with_bad_lines: Path) -> None:
    records = load_records([str(pairs_with_bad_lines)], "prompt", skip_bad_records=True)
    assert [record.origin.location for record in records] == ["line 1", "line 2", "line 3"]


def test_no_specs_is_an_error() -> None:
    with pytest.raises(ValueError, match="no dataset specs"):
        load_records([], "prompt")


# ------------------------------------------------------------------------- no usable records


def test_no_usable_records_names_the_sources_and_each_reason() -> None:
    removed = {"skipped as bad records": 3, "dropped as identical after tokenization": 2, "x": 0}
    error = no_usable_records(["data/pairs.jsonl", "b.jsonl"], removed)
    assert isinstance(error, RecordError)
    assert str(error) == (
        "no usable records in data/pairs.jsonl, b.jsonl: 3 skipped as bad records, "
        "2 dropped as identical after tokenization"
    )
    assert str(no_usable_records(["a"], {})) == "no usable records in a: no rows"


def test_every_record_skipped_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            preference_row(0, better_response_id=2),
            preference_row(1, response_1="Same.", response_0="Same."),
        ],
    )
    with pytest.raises(RecordError) as caught:
        load_records([str(path)], "preference", skip_bad_records=True)
    assert str(caught.value) == f"no usable records in {path}: 2 skipped as bad records"


def test_a_proportion_that_selects_nothing_is_an_error(two_sources: tuple[Path, Path]) -> None:
    with pytest.raises(RecordError, match="10 valid but left out by a proportion below 1"):
        load_records([f"{two_sources[0]}:0.04"], "supervised")
    # one empty selection among others is only a warning
    assert len(load_records([f"{two_sources[0]}:0.04", str(two_sources[1])], "supervised")) == 4


def test_identical_responses_are_skipped_and_counted_like_other_bad_records(
    tmp_path: Path,
) -> None:
    same = preference_row(1, response_0="Same.", response_1="Same.")
    path = write_jsonl(tmp_path / "pairs.jsonl", [preference_row(0), same])
    with pytest.raises(RecordError, match=r"pairs\.jsonl line 2: field 'response_1' is identical"):
        load_records([str(path)], "preference")
    records, stats = load_records_with_stats([str(path)], "preference", skip_bad_records=True)
    assert len(records) == 1 and stats[0].num_skipped == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-dataset", r"unknown dataset 'no-such-dataset'"),
        ("{tmp}/missing.jsonl", r"missing\.jsonl does not exist"),
        ("{tmp}/bad.jsonl", r"bad\.jsonl line 1: field 'better_response_id' must be 0 or 1"),
        ("{tmp}/bad.jsonl:0.5:", r"the path after the second ':' is empty"),
        ("benchmark-preference/train", r"no data_root was given"),
    ],
)
def test_check_sources_names_the_config_key(tmp_path: Path, spec: str, message: str) -> None:
    write_jsonl(tmp_path / "bad.jsonl", [preference_row(0, better_response_id=3)])
    with pytest.raises(RecordError, match=message) as caught:
        check_sources([spec.format(tmp=tmp_path)], "preference", key="data.preference_train")
    assert str(caught.value).startswith("config key 'data.preference_train': ")
    assert "\n" not in str(caught.value)


def test_check_sources_returns_what_each_source_gave(two_sources: tuple[Path, Path]) -> None:
    stats = check_sources(
        [f"{two_sources[0]}:0.5", str(two_sources[1])], "supervised", key="data.sft_train"
    )
    assert [(s.num_valid, s.num_skipped, s.num_selected) for s in stats] == [(10, 0, 5), (4, 0, 4)]


def test_check_sources_for_the_cost_stage_wants_consistent_safety_labels(tmp_path: Path) -> None:
    unlabelled = dict.fromkeys(("safer_response_id", "is_response_0_safe", "is_response_1_safe"))
    path = write_jsonl(tmp_path / "hh.jsonl", [preference_row(0, **unlabelled)])
    key = "data.preference_train"
    assert check_sources([str(path)], "preference", key=key)[0].num_valid == 1  # fine for R
    with pytest.raises(RecordError, match=rf"^config key '{key}': {path} has no safety labels"):
        check_sources([str(path)], "preference", key=key, safety_labels=True)
    path = write_jsonl(tmp_path / "pairs.jsonl", [preference_row(0, safer_response_id=1)])
    with pytest.raises(RecordError, match=r"pairs\.jsonl line 1: inconsistent safety labels"):
        check_sources([str(path)], "preference", key=key, safety_labels=True)
    assert (
        check_sources(
            [str(path)], "preference", key=key, safety_labels=True, skip_bad_records=True
        )[0].num_valid
        == 1
    )
