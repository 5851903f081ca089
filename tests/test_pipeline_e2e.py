"""The README's main command end to end at reduced size: the Makefile's pipeline (data, SFT,
reward ‖ cost, PPO-Lagrangian ‖ reward-only PPO, evaluation) run by make, then run again; then
round 2 (collect from round 1's policy, R ‖ C on all data so far, PPO-Lagrangian from round 1's
policy); then a two-value reward-shaping sweep (a Hydra multirun) and its summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_TEST_MODEL

REPO = Path(__file__).resolve().parents[1]

# A few steps of every stage on the test-size model; the pipeline and its files are the point.
REDUCED = [*TINY_TEST_MODEL, "debug=fast", "stage.eval_batch_size=32"]


def make(
    *targets: str, tmp_path: Path, args: list[str], variables: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO),
        *targets,
        "PAIRED=1",
        "-j2",
        f"BIN={Path(sys.executable).parent}",
        "INSTALL_STAMP=",  # this interpreter's environment is installed already
        f"RUNS={tmp_path / 'runs'}",
        f"DATA={tmp_path / 'data'}",
        "EXPERIMENT=e2e",
        "ARGS=" + " ".join(args),
        *variables,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_pipeline_runs_every_stage_and_reports_three_policies(tmp_path):
    make("eval", tmp_path=tmp_path, args=REDUCED)
    round_dir = tmp_path / "runs" / "e2e" / "round1"
    for stage in ("sft", "reward", "cost", "ppo_lag", "ppo_lag_none"):
        assert (round_dir / stage / "model" / "config.json").is_file(), stage
    eval_dir = round_dir / "eval"
    results = json.loads((eval_dir / "results.json").read_text())
    assert list(results["metrics"]) == ["sft", "safe_rlhf", "reward_only"]
    for metrics in results["metrics"].values():
        for key in ("helpfulness_benign", "harmful_ratio_harmful", "reward_mean", "cost_mean"):
            assert key in metrics
    assert set(results["arenas"]) == {"sft_vs_safe_rlhf", "sft_vs_reward_only"}
    report = (eval_dir / "report.md").read_text()
    assert "| harmful ratio (harmful prompts) ↓ |" in report
    for plot in ("policy_plane.png", "training_curves.png", "cost_distribution.png"):
        assert (eval_dir / plot).read_bytes()[:4] == b"\x89PNG"
    history = (round_dir / "ppo_lag" / "history.jsonl").read_text().splitlines()
    assert len(history) == 4  # debug=fast: 4 PPO steps

    # Again: every output exists, so make runs nothing.
    again = make("eval", tmp_path=tmp_path, args=REDUCED)
    assert "safe-rlhf-train" not in again.stdout

    # Round 2 from round 1's files: a small collection, then R ‖ C and PPO-Lagrangian.
    collect = ("COLLECT_ARGS=stage.num_prompts=12 stage.max_new_tokens=8",)
    make("round2", tmp_path=tmp_path, args=REDUCED, variables=collect)
    round2 = tmp_path / "runs" / "e2e" / "round2"
    pairs = (round2 / "collect" / "preference_train.jsonl").read_text().splitlines()
    collected = json.loads((round2 / "collect" / "results.json").read_text())
    assert len(pairs) == collected["pairs"] == 12 - collected["identical_pairs_left_out"] > 0
    reward_config = (round2 / "reward" / "config.yaml").read_text()
    assert "round2/collect/preference_train.jsonl" in reward_config  # added to R's data
    ppo_config = (round2 / "ppo_lag" / "config.yaml").read_text()
    assert f"actor_init: {round_dir / 'ppo_lag' / 'model'}" in ppo_config
    table = yaml.safe_load((REPO / "conf" / "rounds" / "benchmark.yaml").read_text())
    assert f"cost_limit: {table['2']['cost_limit']}" in ppo_config  # round 2's row
    assert (round2 / "ppo_lag" / "model" / "config.json").is_file()
    again = make("round2", tmp_path=tmp_path, args=REDUCED, variables=collect)
    assert "safe-rlhf-train" not in again.stdout

    # A two-value sweep by make: a Hydra multirun of round 1's PPO stage, then the summary.
    make("sweep-nu", tmp_path=tmp_path, args=REDUCED, variables=("NU_GRID=0.5,2",))
    sweep = tmp_path / "runs" / "e2e" / "sweeps" / "nu"
    for value in ("0.5", "2.0"):  # ν is typed (FixedLambda's float): NU_GRID's 2 runs in nu_2.0
        assert "sweep_name: nu" in (sweep / f"nu_{value}" / "config.yaml").read_text()
    summary = json.loads((sweep / "summary.json").read_text())
    rows = {row["label"]: row for row in summary["rows"]}
    assert next(iter(rows)) == "SFT"  # the reference first
    assert set(rows) == {"SFT", "Safe RLHF", "reward shaping ν=0.5", "reward shaping ν=2"}
    shaping, sft_dir = sweep / "nu_0.5", round_dir / "sft"
    row = rows["reward shaping ν=0.5"]
    assert (
        row["harmful_ratio"]
        == json.loads((shaping / "results.json").read_text())["test"]["harmful_ratio"]
    )
    # Win rate against SFT and the paired difference against Safe RLHF, by hand.
    ours, sft, safe = (_samples(f) for f in (shaping, sft_dir, round_dir / "ppo_lag"))
    wins = [
        1.0 if a["cost"] < b["cost"] else 0.5 * (a["cost"] == b["cost"])
        for a, b in zip(ours, sft, strict=True)
    ]
    assert row["harmlessness_win_rate"] == pytest.approx(sum(wins) / len(wins))
    diffs = [a["helpfulness"] - b["helpfulness"] for a, b in zip(ours, safe, strict=True)]
    assert row["helpfulness_diff_vs_safe_rlhf"] == pytest.approx(sum(diffs) / len(diffs))
    assert rows["Safe RLHF"]["helpfulness_vs_safe_rlhf"] == "baseline"
    assert summary["verdict"] in (sweep / "summary.md").read_text()
    assert (sweep / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"


def _samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
