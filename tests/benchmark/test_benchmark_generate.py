"""The generated files: schema, split, determinism, label quality and the cost reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safe_rlhf_lightning.benchmark import (
    DEFAULT_COST_LIMIT,
    HARM_CATEGORIES,
    MANIFEST_FILE,
    PREFERENCE_TEST_FILE,
    PREFERENCE_TRAIN_FILE,
    PROMPT_KINDS,
    PROMPTS_TEST_FILE,
    PROMPTS_TRAIN_FILE,
    SFT_TEST_FILE,
    SFT_TRAIN_FILE,
    Oracle,
    benchmark_corpus,
    generate_benchmark,
)
from safe_rlhf_lightning.benchmark.annotators import label_agreement
from safe_rlhf_lightning.benchmark.phrases import normalize
from safe_rlhf_lightning.files import write_jsonl_atomic

Rows = dict[str, list[dict[str, Any]]]
ALL_FILES = [
    SFT_TRAIN_FILE,
    SFT_TEST_FILE,
    PREFERENCE_TRAIN_FILE,
    PREFERENCE_TEST_FILE,
    PROMPTS_TRAIN_FILE,
    PROMPTS_TEST_FILE,
]
PROMPT_FIELDS = {"prompt": str, "prompt_kind": str, "topic": str, "category": str}
PREFERENCE_FIELDS = PROMPT_FIELDS | {
    "response_0": str,
    "response_1": str,
    "better_response_id": int,
    "safer_response_id": int,
    "is_response_0_safe": bool,
    "is_response_1_safe": bool,
    "response_0_severity_level": int,
    "response_1_severity_level": int,
    "response_0_harm_category": list,
    "response_1_harm_category": list,
    "oracle_response_0_helpfulness": float,
    "oracle_response_1_helpfulness": float,
    "oracle_response_0_cost": float,
    "oracle_response_1_cost": float,
}


def test_writes_every_file_with_the_manifest_counts(benchmark_dir: Path, manifest: dict) -> None:
    names = sorted(p.name for p in benchmark_dir.iterdir())
    assert names == sorted([*ALL_FILES, MANIFEST_FILE])  # and no temporary files left
    for name in ALL_FILES:
        lines = (benchmark_dir / name).read_text(encoding="utf-8").splitlines()
        assert len(lines) == manifest["counts"][name]
    counts = manifest["counts"]
    assert 2_000 <= counts[SFT_TRAIN_FILE] <= 4_000
    # Enough pairs that the tiny reward model learns the preference rather than the label noise.
    assert 10_000 <= counts[PREFERENCE_TRAIN_FILE] <= 15_000
    assert 150 <= counts[PROMPTS_TEST_FILE] <= 500


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        (PROMPTS_TRAIN_FILE, PROMPT_FIELDS),
        (PROMPTS_TEST_FILE, PROMPT_FIELDS),
        (SFT_TRAIN_FILE, PROMPT_FIELDS | {"response": str}),
        (SFT_TEST_FILE, PROMPT_FIELDS | {"response": str}),
        (PREFERENCE_TRAIN_FILE, PREFERENCE_FIELDS),
        (PREFERENCE_TEST_FILE, PREFERENCE_FIELDS),
    ],
)
def test_rows_have_the_schema(rows: Rows, name: str, fields: dict[str, type]) -> None:
    for row in rows[name]:
        assert set(row) == set(fields), name
        for key, expected in fields.items():
            value = row[key]
            if expected is float:
                assert isinstance(value, (int, float)) and not isinstance(value, bool), key
            elif expected is int:
                assert isinstance(value, int) and not isinstance(value, bool), key
            else:
                assert isinstance(value, expected), key
        assert row["prompt_kind"] in PROMPT_KINDS
        assert row["category"] in (*HARM_CATEGORIES, "none")
        assert (row["category"] == "none") == (row["prompt_kind"] == "benign")
        if name.startswith("preference"):
            assert row["better_response_id"] in (0, 1) and row["safer_response_id"] in (0, 1)
            for i in (0, 1):
                assert 0 <= row[f"response_{i}_severity_level"] <= 3
                assert set(row[f"response_{i}_harm_category"]) <= set(HARM_CATEGORIES)


def test_train_and_test_prompts_are_disjoint_on_shared_topics(rows: Rows) -> None:
    train = {r["prompt"] for r in rows[PROMPTS_TRAIN_FILE]}
    test = {r["prompt"] for r in rows[PROMPTS_TEST_FILE]}
    assert train and test and not train & test
    assert {r["prompt"] for r in rows[SFT_TRAIN_FILE]} <= train
    assert {r["prompt"] for r in rows[PREFERENCE_TEST_FILE]} <= test
    assert {r["topic"] for r in rows[PROMPTS_TEST_FILE]} == {
        r["topic"] for r in rows[PROMPTS_TRAIN_FILE]
    }


def test_same_seed_gives_identical_bytes_and_another_seed_differs(
    benchmark_dir: Path, tmp_path: Path
) -> None:
    generate_benchmark(tmp_path / "again", seed=0)
    generate_benchmark(tmp_path / "other", seed=1)
    for name in [*ALL_FILES, MANIFEST_FILE]:
        original = (benchmark_dir / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == original, name
    assert (tmp_path / "other" / SFT_TRAIN_FILE).read_bytes() != (
        benchmark_dir / SFT_TRAIN_FILE
    ).read_bytes()
    assert (tmp_path / "other" / PROMPTS_TEST_FILE).read_bytes() != (
        benchmark_dir / PROMPTS_TEST_FILE
    ).read_bytes()


def test_a_lone_safe_label_marks_the_safer_response(rows: Rows) -> None:
    for row in rows[PREFERENCE_TRAIN_FILE] + rows[PREFERENCE_TEST_FILE]:
        if row["is_response_0_safe"] != row["is_response_1_safe"]:
            assert row["safer_response_id"] == (0 if row["is_response_0_safe"] else 1)


def test_oracle_columns_match_the_oracle(rows: Rows, oracle: Oracle) -> None:
    for row in rows[PREFERENCE_TEST_FILE]:
        for i in (0, 1):
            score = oracle.score(row["prompt"], row[f"response_{i}"])
            assert row[f"oracle_response_{i}_helpfulness"] == pytest.approx(score.helpfulness)
            assert row[f"oracle_response_{i}_cost"] == pytest.approx(score.cost)
            assert row[f"response_{i}_severity_level"] == score.severity


def test_annotator_agreement_is_near_the_papers(rows: Rows, manifest: dict) -> None:
    agreement = label_agreement(rows[PREFERENCE_TRAIN_FILE] + rows[PREFERENCE_TEST_FILE])
    assert 0.72 <= agreement["better"] <= 0.83
    assert 0.72 <= agreement["safer"] <= 0.83
    assert 0.95 <= agreement["safety_label_accuracy"] <= 0.99
    assert manifest["annotator_agreement"] == pytest.approx(agreement)


def test_demonstrations_are_alpaca_like(rows: Rows, oracle: Oracle, manifest: dict) -> None:
    demos = rows[SFT_TRAIN_FILE]
    scores = {kind: [] for kind in PROMPT_KINDS}
    for row in demos:
        scores[row["prompt_kind"]].append(oracle.score(row["prompt"], row["response"]))
    harmful_share = sum(not s.is_safe for s in scores["harmful"]) / len(scores["harmful"])
    assert 0.45 <= harmful_share <= 0.65
    assert manifest["sft"]["harmful_share_on_harmful_prompts"] == pytest.approx(harmful_share)
    assert all(s.is_safe and s.helpfulness > 0 for s in scores["benign"])
    dual_risky = sum(not s.is_safe for s in scores["dual_use"]) / len(scores["dual_use"])
    assert dual_risky > 0.6
    assert max(len(r["response"].split()) for r in demos) <= 60


def test_cost_limit_binds_for_sft_and_admits_the_ideal(manifest: dict) -> None:
    cost = manifest["cost"]
    assert cost["default_cost_limit"] == DEFAULT_COST_LIMIT
    assert cost["ideal_mean_cost"] < DEFAULT_COST_LIMIT < cost["sft_mean_cost"]
    # At most ~10% of harmful prompts answered harmfully fit under the limit.
    assert cost["cost_limit_at_10pct_harmful"] >= DEFAULT_COST_LIMIT
    assert cost["sft_mean_cost"] - DEFAULT_COST_LIMIT > 0.3  # clearly above, not marginal


def test_responses_stay_short(rows: Rows) -> None:
    for row in rows[PREFERENCE_TRAIN_FILE]:
        assert len(row["response_0"].split()) <= 60
        assert len(row["response_1"].split()) <= 60


def test_vocabulary_is_small_and_covers_every_file(rows: Rows) -> None:
    corpus = benchmark_corpus()
    vocabulary = {word for text in corpus for word in text.lower().split()}
    assert len(vocabulary) < 1_500
    corpus_words = {word for text in corpus for word in normalize(text)}
    for name, file_rows in rows.items():
        for row in file_rows:
            for key in ("prompt", "response", "response_0", "response_1"):
                if key in row:
                    assert set(normalize(row[key])) <= corpus_words, (name, row[key])


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    write_jsonl_atomic(path, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl_atomic(path, [{"a": 2}, {"b": object()}])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
