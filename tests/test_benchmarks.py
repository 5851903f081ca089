"""The benchmark scripts keep working: our PPO step timer at a minuscule size, the pipeline
meter on a small command, and the GPU check in its CPU smoke mode. (The TRL side needs its own
environment, ``make bench-ppo``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


VARIANTS = {
    "defaults": [],
    "switched": ["--shared-critic", "--logprobs-forward-pass", "--loop-optimizer"],
    "grpo": ["--advantage", "grpo", "--group-size", "2"],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.slow
def test_ppo_step_benchmark_reports_medians_phases_and_shapes(variant):
    switched = variant == "switched"
    group = 2 if variant == "grpo" else 1
    options = VARIANTS[variant]
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "ppo_step.py"),
            "--hidden-size",
            "32",
            "--layers",
            "1",
            "--heads",
            "2",
            "--intermediate",
            "64",
            "--vocab-size",
            "300",
            "--batch-size",
            "4",
            "--response-length",
            "6",
            "--minibatches",
            "2",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["options"] == {
        "shared_critic": switched,
        "logprobs_from_generation": not switched,
        "fused_optimizer": not switched,
        "advantage": "grpo" if variant == "grpo" else "gae",
        "group_size": group,
    }
    assert len(report["step_times_s"]) == 3 and report["median_step_s"] > 0
    # Each rollout's shape, for the FLOP count: 4 prompts x the group, at most 6 new tokens.
    assert len(report["step_shapes"]) == 3
    for shape in report["step_shapes"]:
        assert shape["rows"] == 4 * group and 1 <= shape["response"] <= 6
        assert 8 <= shape["prompt"] <= 24  # the prompts' widths: --prompt-min/max-tokens
    sys.path.insert(0, str(BENCHMARKS))
    from compare_ppo import step_flops, work_rates

    counted = [sum(phases.values()) for phases in step_flops("ours", report)][1:]
    work = work_rates("ours", report)
    assert work["achieved_gflops_per_s"] == pytest.approx(
        sum(counted) / sum(report["step_times_s"][1:]) / 1e9
    )
    # The timed steps' work over their time, in the counted phases.
    assert set(work["gflop_per_step_by_phase"]) == {"generation", "scoring", "updates"}
    assert report["prompts_per_s"] == pytest.approx(4 / report["median_step_s"])
    assert set(report["median_phase_s"]) == {
        "generation_seconds",
        "scoring_seconds",
        "update_seconds",
    }
    assert ("cost_critic" in report["config"]["params_per_model"]) == (variant == "defaults")


def test_pipeline_meter_sums_the_process_tree(tmp_path):
    output = tmp_path / "meter.json"
    child = "import time; x = bytearray(200 * 2**20); time.sleep(1.0)"
    command = f"{sys.executable} -c '{child}' & {sys.executable} -c '{child}'; wait"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "measure_pipeline.py"),
            "--interval",
            "0.05",
            "--output",
            str(output),
            "--",
            "bash",
            "-c",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    meter = json.loads(output.read_text())
    assert meter["peak_single_process_rss_mib"] >= 200
    assert meter["peak_tree_rss_mib"] >= 400  # both children at once
    assert meter["wall_s"] >= 1.0


@pytest.mark.slow
def test_gpu_check_runs_every_stage_in_its_cpu_smoke_mode(tmp_path):
    output = tmp_path / "check.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "gpu_check.py"),
            "--device",
            "cpu",
            "--tiny",
            "--work-dir",
            str(tmp_path),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    stages = report["stages"]
    assert list(stages) == ["sft", "reward", "cost", "ppo_lag", "eval"]
    for name in ("sft", "reward", "cost", "ppo_lag"):
        assert stages[name]["timed_steps"] == 2  # 3 steps, the first one left out
        assert stages[name]["samples_per_s"] > 0 and stages[name]["tokens_per_s"] > 0
        assert stages[name]["peak_memory_gib"] is None  # measured on CUDA only
    assert stages["sft"]["samples_per_step"] == stages["reward"]["samples_per_step"] == 4
    assert stages["ppo_lag"]["samples_per_step"] == 2 * 4  # prompts x responses per prompt
    assert stages["ppo_lag"]["median_generation_seconds"] > 0
    assert stages["eval"]["samples"] == 8 and stages["eval"]["samples_per_s"] > 0
    assert report["environment"]["num_parameters"] > 0
    table = result.stdout.splitlines()
    assert any(line.startswith("ppo_lag ") for line in table), result.stdout


@pytest.mark.slow
def test_gpu_check_without_a_gpu_says_so_and_fails():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 2
    assert "gpu_check: no CUDA device" in result.stderr and "--device cpu --tiny" in result.stderr
