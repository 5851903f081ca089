"""The README's main command end to end at reduced size: the Makefile's pipeline (data, SFT,
reward ‖ cost, PPO-Lagrangian ‖ reward-only PPO, evaluation) run by make, then run again; then
round 2 (collect from round 1's policy, R ‖ C on all data so far, PPO-Lagrangian from round 1's
policy); then a two-value reward-shaping sweep (the ``sweep_nu`` preset's Hydra multirun) logged to
W&B offline, its summary, and ``make wandb-sync`` in its dry-run mode (no key, no network), the
runs it would upload read back with wandb's own reader of offline runs (``wandb leet inspect``)."""

from __future__ import annotations

import json
import os
import re
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
    # ~1 min for round 1 on 2 free cores; a heavily loaded machine took over 15.
    env = _environment(tmp_path)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _environment(tmp_path: Path) -> dict[str, str]:
    """Offline, and W&B as on a fresh machine: no key, its own folders under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    env["NETRC"] = str(tmp_path / "no-netrc")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        env[name] = str(tmp_path / name.lower())
    return env


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

    # A two-value sweep by make: a Hydra multirun of round 1's PPO stage, then the summary; its
    # runs and the summary go to W&B (offline here).
    sweep_args = ("NU_GRID=0.5,2", "SWEEP_ARGS=logger=csv_wandb")
    make("sweep-nu", tmp_path=tmp_path, args=REDUCED, variables=sweep_args)
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

    # The documented upload, dry: it would sync one run per grid value and the summary's run.
    synced = make(
        "wandb-sync", tmp_path=tmp_path, args=[], variables=("WANDB_SYNC_ARGS=--dry-run",)
    )
    # wandb prints the paths relative to its working directory (make's, the repository) if below it
    listed = re.findall(r"\S+\.wandb\b", synced.stdout + synced.stderr)
    files = sorted(str(REPO / path) for path in listed)
    assert "Would sync 3 run(s)" in synced.stdout + synced.stderr, synced.stderr
    runs = {run["name"]: run for run in map(_wandb_run, files)}
    assert set(runs) == {
        "e2e-round1-ppo_lag-fixed-nu0.5",
        "e2e-round1-ppo_lag-fixed-nu2",
        "e2e-nu-summary",
    }
    assert {run["group"] for run in runs.values()} == {"e2e-nu"}  # one group: the sweep
    for value, folder in (("0.5", "nu_0.5"), ("2", "nu_2.0")):
        run = runs[f"e2e-round1-ppo_lag-fixed-nu{value}"]
        assert run["job_type"] == "ppo_lag" and f"lambda_schedule.nu={value}" in run["tags"]
        assert run["config"]["launch"]["swept"] == {"lambda_schedule.nu": value}
        test = json.loads((sweep / folder / "results.json").read_text())["test"]
        for column in ("harmful_ratio", "helpfulness", "helpfulness_benign"):
            assert run["summary"][f"test/{column}"] == pytest.approx(test[column]), column
    summary_run = runs["e2e-nu-summary"]
    assert summary_run["job_type"] == "summary"
    assert summary_run["summary"]["verdict"] == summary["verdict"]
    assert "sweep_summary" in summary_run["summary"]  # the summary table


def _wandb_run(path: str) -> dict:
    """An offline run as wandb itself reads it back: name, tags, config and summary from
    ``wandb leet inspect --summary --json``, group and job type from the run record of its log."""
    wandb = [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json"]
    run = json.loads(_check_output([*wandb, "--summary", path]))
    records = map(json.loads, _check_output([*wandb, path]).splitlines())
    (record,) = (r["run"] for r in records if r["type"] == "run")
    return {**run, "group": record.get("run_group"), "job_type": record.get("job_type")}


def _check_output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


def _samples(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
