"""The benchmark scripts keep working: our PPO step timer at a minuscule size, and the pipeline
meter on a small command. (The TRL side needs its own environment, ``make bench-ppo``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("fast", [False, True])
def test_ppo_step_benchmark_reports_medians_and_phases(fast):
    options = ["--shared-critic", "--logprobs-from-generation"] if fast else []
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ppo_step.py"), "--hidden-size", "32", "--layers", "1",
         "--heads", "2", "--intermediate", "64", "--vocab-size", "300", "--batch-size", "4",
         "--response-length", "6", "--minibatches", "2", "--steps", "3", "--warmup", "1",
         "--threads", "1", *options],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["options"] == {"shared_critic": fast, "logprobs_from_generation": fast}
    assert len(report["step_times_s"]) == 3 and report["median_step_s"] > 0
    assert report["prompts_per_s"] == pytest.approx(4 / report["median_step_s"])
    assert set(report["median_phase_s"]) == {
        "generation_seconds", "scoring_seconds", "update_seconds"
    }  # fmt: skip
    assert ("cost_critic" in report["config"]["params_per_model"]) == (not fast)


def test_pipeline_meter_sums_the_process_tree(tmp_path):
    output = tmp_path / "meter.json"
    child = "import time; x = bytearray(200 * 2**20); time.sleep(1.0)"
    command = f"{sys.executable} -c '{child}' & {sys.executable} -c '{child}'; wait"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "measure_pipeline.py"), "--interval", "0.05",
         "--output", str(output), "--", "bash", "-c", command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meter = json.loads(output.read_text())
    assert meter["peak_single_process_rss_mib"] >= 200
    assert meter["peak_tree_rss_mib"] >= 400  # both children at once
    assert meter["wall_s"] >= 1.0
