"""What every launch gets from the runner skeleton before any model is loaded: the data and
devices checked first, one writer per run folder, a refused run leaving no folder behind, and the
refusal as one line on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from safe_rlhf_lightning.cli import ppo_lag as ppo_runner
from safe_rlhf_lightning.cli import preference as preference_runner
from safe_rlhf_lightning.cli import sft as sft_runner
from safe_rlhf_lightning.cli.runner import (
    LOCK_FILE,
    discard_refused_run_folder,
    run_folder_lock,
    run_stage,
)
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.data import RecordError
from tests.conftest import compose_run_config

BAD_PAIRS = json.dumps({"prompt": "hi", "response_0": "a"}) + "\n"


def _never(*args, **kwargs):
    raise AssertionError("a model was loaded before the data was checked")


@pytest.mark.parametrize(
    ("stage", "runner", "loader", "overrides"),
    [
        ("sft", sft_runner, "build_policy", ["data.sft_train=[{bad}]"]),
        (
            "reward",
            preference_runner,
            "ScoreModel",
            ["data.preference_train=[{bad}]", "stage.init_from={models}/sft"],
        ),
        (
            "cost",
            preference_runner,
            "ScoreModel",
            ["data.preference_eval=[{bad}]", "stage.init_from={models}/sft"],
        ),
        (
            "ppo_lag",
            ppo_runner,
            "load_causal_lm",
            ["data.prompt_train=[{bad}]", "stage.actor_init={models}/sft"],
        ),
    ],
)
def test_every_data_source_is_checked_before_a_model_is_loaded(
    stage, runner, loader, overrides, tmp_path, benchmark_dir, model_folders, monkeypatch
):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(BAD_PAIRS if stage != "ppo_lag" else '{"prompt": ""}\n')
    monkeypatch.setattr(runner, loader, _never)
    if stage != "sft":
        monkeypatch.setattr(runner, "load_tokenizer", _never)
    filled = [o.format(bad=bad, models=model_folders) for o in overrides]
    cfg = compose_run_config([f"stage={stage}", "debug=fast", *filled], tmp_path, benchmark_dir)
    with pytest.raises(RecordError, match=r"bad\.jsonl line 1"):
        run_stage(cfg)


def test_a_gpu_trainer_without_cuda_is_refused_before_the_data_is_read(
    tmp_path, benchmark_dir, monkeypatch
):
    import torch

    from safe_rlhf_lightning.cli import runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runner, "check_data", _never)
    cfg = compose_run_config(["stage=sft", "trainer=gpu"], tmp_path, benchmark_dir)
    with pytest.raises(ConfigError, match=r"'trainer.accelerator' is 'gpu'.*no CUDA device"):
        run_stage(cfg)


def test_an_uncached_hub_model_is_a_config_error_naming_the_key(tmp_path, benchmark_dir):
    cfg = compose_run_config(
        ["stage=sft", "model=pretrained", "model.name_or_path=no-such-org/no-such-model"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"'model.name_or_path'.*not in the Hugging Face cache"):
        run_stage(cfg)


def test_a_second_launch_into_a_folder_in_use_is_refused_naming_the_process(
    tmp_path, benchmark_dir
):
    run_dir = tmp_path / "run"
    cfg = compose_run_config(["stage=sft", "debug=fast"], tmp_path, benchmark_dir)
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(run_dir / LOCK_FILE)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.write('process %d\\n' % __import__('os').getpid()); f.flush()\n"
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            ConfigError,
            match=rf"run folder {run_dir} is in use by process "
            rf"{holder.pid}",
        ):
            run_stage(cfg)
    finally:
        holder.kill()
        holder.wait()
    # The holder was killed: its lock went with it, though its file (and pid) stayed.
    assert (run_dir / LOCK_FILE).read_text().strip() == f"process {holder.pid}"
    with run_folder_lock(run_dir):
        assert (run_dir / LOCK_FILE).read_text().strip() == f"process {os.getpid()}"
    assert (run_dir / LOCK_FILE).read_text() == ""  # released on exit


def test_only_a_folder_holding_nothing_but_the_launch_is_discarded(tmp_path):
    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "train.log").write_text("refused\n")
    (fresh / LOCK_FILE).write_text("")
    assert discard_refused_run_folder(fresh) and not fresh.exists()

    started = tmp_path / "started"
    (started / "checkpoints").mkdir(parents=True)
    (started / "train.log").write_text("...")
    assert not discard_refused_run_folder(started) and (started / "checkpoints").exists()

    killed = tmp_path / "killed"  # its holder died without releasing: not ours to remove
    killed.mkdir()
    (killed / LOCK_FILE).write_text("process 12345\n")
    assert not discard_refused_run_folder(killed) and killed.exists()


@pytest.mark.slow
def test_a_refused_run_prints_one_line_on_stderr_and_leaves_no_folder(tmp_path, benchmark_dir):
    bad = tmp_path / "sft.jsonl"
    bad.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "x", "response": ')
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_rlhf_lightning.cli.train",
            "stage=sft",
            "debug=fast",
            f"data.sft_train=[{bad}]",
            f"data.root={benchmark_dir}",
            f"hydra.run.dir={run_dir}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and f"{bad} line 2: invalid JSON" in errors[0], result.stderr
    assert "ERROR" not in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert not run_dir.exists()
