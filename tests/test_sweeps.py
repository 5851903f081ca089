"""A Hydra multirun of the PPO stage (the sweep make targets' mechanism) and the summary command
on the run folders it makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from statistics import fmean

import pytest

from safe_rlhf_lightning.cli.summary import main as summary_main

PPO_TINY = [
    "stage=ppo_lag", "debug=fast", "stage.max_steps=2", "stage.batch_size=4",
    "stage.num_return_sequences=2", "stage.max_new_tokens=8", "stage.minibatch_size=4",
    "stage.eval_max_new_tokens=8", "trainer.enable_progress_bar=false",
]  # fmt: skip


def _samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_value_multirun_runs_and_the_summary_tabulates_it(
    model_folders, benchmark_dir, tmp_path
):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "safe_rlhf_lightning.cli.train", "-m", *PPO_TINY,
        f"stage.actor_init={model_folders / 'sft'}",
        f"stage.reward_model={model_folders / 'reward'}",
        f"stage.cost_model={model_folders / 'cost'}",
        f"paths.runs_dir={tmp_path / 'runs'}", f"data.root={benchmark_dir}",
        "sweep_name=schedules", f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.runtime.choices.lambda_schedule}",  # as make sweep-lambda
        "lambda_schedule=learned,fixed",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    # Runs are named by the swept value, so the same sweep run again finds them.
    learned, fixed = sweep / "learned", sweep / "fixed"
    for run in (learned, fixed):
        assert (run / "model" / "config.json").is_file()
        assert "sweep_name: schedules" in (run / "config.yaml").read_text()

    output = tmp_path / "summary"
    assert summary_main([str(sweep), "--reference", str(learned), "--output", str(output)]) == 0
    summary = json.loads((output / "summary.json").read_text())
    rows = {row["label"]: row for row in summary["rows"]}
    assert list(rows) == ["Safe RLHF", "reward shaping"]  # the reference first, listed once
    shaping, safe = rows["reward shaping"], rows["Safe RLHF"]
    expected_test = json.loads((fixed / "results.json").read_text())["test"]
    assert shaping["harmful_ratio"] == expected_test["harmful_ratio"]
    assert shaping["helpfulness"] == expected_test["helpfulness"]
    # Win rates and paired differences by hand from the two runs' oracle-scored samples.
    ours, theirs = _samples(fixed), _samples(learned)
    wins = fmean(
        1.0 if a["helpfulness"] > b["helpfulness"] else 0.5 * (a["helpfulness"] == b["helpfulness"])
        for a, b in zip(ours, theirs, strict=True)
    )
    assert shaping["helpfulness_win_rate"] == pytest.approx(wins)
    assert safe["helpfulness_win_rate"] == safe["harmlessness_win_rate"] == 0.5
    diff = fmean(a["helpfulness"] - b["helpfulness"] for a, b in zip(ours, theirs, strict=True))
    assert shaping["helpfulness_diff_vs_safe_rlhf"] == pytest.approx(diff)
    assert safe["helpfulness_vs_safe_rlhf"] == "baseline"
    markdown = (output / "summary.md").read_text()
    assert "| reward shaping |" in markdown and summary["verdict"] in markdown
    assert (output / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
