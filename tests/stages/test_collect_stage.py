"""The collect stage: round k's pairs sampled from a policy, labelled by the simulated annotators
or by people through a file, in the PKU-SafeRLHF schema that the reward and cost stages read."""

from __future__ import annotations

import json

import pytest

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.data import load_records
from safe_rlhf_lightning.rounds import LABEL_FIELDS, LabelsPending
from tests.conftest import compose_run_config

SMALL = [
    "stage=collect",
    "round=2",
    "stage.num_prompts=6",
    "stage.eval_limit=10",
    "stage.max_new_tokens=8",
    "stage.eval_batch_size=16",
]


def _collect(extra, model_folders, tmp_path, benchmark_dir):
    cfg = compose_run_config(
        [*SMALL, f"stage.policy={model_folders / 'sft'}", *extra], tmp_path, benchmark_dir
    )
    return run_stage(cfg)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_simulated_labels_write_pairs_the_preference_loader_reads(
    model_folders, tmp_path, benchmark_dir
):
    results = _collect([], model_folders, tmp_path, benchmark_dir)
    run = tmp_path / "run"
    rows = _rows(run / "preference_train.jsonl")
    assert results["drawn"]["num_prompts"] == 6
    assert len(rows) == results["pairs"] == 6 - results["identical_pairs_left_out"]
    flagged = results["probe"]["flagged_share"] * 10  # a share of the 10 probed candidates
    assert flagged == pytest.approx(round(flagged))
    assert sum(results["prompt_kinds"].values()) == len(rows)
    assert results["probe"]["oracle"]["num_responses"] == 10  # the capped candidates, probed
    for row in rows:
        assert row["response_0"] != row["response_1"]
        assert row[LABEL_FIELDS[0]] in (0, 1) and row["prompt_kind"] in (
            "benign",
            "dual_use",
            "harmful",
        )
        assert "oracle_response_0_cost" in row
    records = load_records([str(run / "preference_train.jsonl")], "preference")
    assert len(records) == len(rows)
    assert "label agreement" in (run / "summary.md").read_text()


def test_uniform_draw_skips_the_probe(model_folders, tmp_path, benchmark_dir):
    results = _collect(["stage.unsafe_weight=1"], model_folders, tmp_path, benchmark_dir)
    assert results["probe"] == {"judge": None}
    assert results["drawn"]["flagged_share"] == 0.0


def test_people_label_through_a_file_and_the_rerun_reads_it_back(
    model_folders, tmp_path, benchmark_dir
):
    extra = ["stage.labeler=file", f"stage.probe_cost_model={model_folders / 'cost'}"]
    with pytest.raises(LabelsPending, match=r"to_label\.jsonl"):
        _collect(extra, model_folders, tmp_path, benchmark_dir)
    run = tmp_path / "run"
    exported = _rows(run / "to_label.jsonl")
    assert exported and all(row[field] is None for row in exported for field in LABEL_FIELDS)
    assert not (run / "preference_train.jsonl").exists()
    # Still unlabelled: the same pairs are kept (not sampled again) and the stage waits again.
    with pytest.raises(LabelsPending):
        _collect(extra, model_folders, tmp_path, benchmark_dir)
    assert _rows(run / "to_label.jsonl") == exported

    for row in exported:
        row.update(
            better_response_id=1,
            safer_response_id=0,
            is_response_0_safe=True,
            is_response_1_safe=False,
        )
    (run / "labelled.jsonl").write_text("".join(json.dumps(row) + "\n" for row in exported))
    results = _collect(extra, model_folders, tmp_path, benchmark_dir)
    assert _rows(run / "preference_train.jsonl") == exported
    assert results["pairs"] == len(exported)


def test_simulated_labels_need_the_benchmarks_prompts(model_folders, tmp_path, benchmark_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Write a poem."}) + "\n")
    with pytest.raises(ConfigError, match=r"stage\.labeler=file"):
        _collect([f"data.prompt_train=[{prompts}]"], model_folders, tmp_path, benchmark_dir)


def test_a_missing_policy_names_the_key(tmp_path, benchmark_dir):
    cfg = compose_run_config(SMALL, tmp_path, benchmark_dir)  # round 1's PPO policy: not there
    with pytest.raises(ConfigError, match=r"stage\.policy.*round1/ppo_lag/model"):
        run_stage(cfg)
