"""A stage killed with SIGKILL at a random moment resumes from its last checkpoint and ends
exactly (bitwise, on CPU) where an uninterrupted run with the same seed ends.

Each run is a real ``safe-rlhf-train`` process. PPO-Lagrangian runs with the learned λ, PTX
batches (two loaders, the shorter one cycling) and prompt/SFT subsets small enough that both
loaders start new passes during the run, so the λ state and its window, the critics, optimizer
and scheduler states, RNG states and both loaders' positions all have to come back; once more
with skipped minibatches and rollouts (``tests/ppo_faults.py``). SFT, reward and cost runs are
killed too. ``tests/test_soak.py`` kills a long PPO run many times with these helpers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

PPO_STEPS = 8
# Seconds a run may take before the test gives up on it: ~20 s on 2 free cores; a loaded machine
# (a whole suite on both cores beside other work) can take many times that.
TIMEOUT = 900
# How a run is started: the CLI, or the CLI with NaN injected into chosen PPO steps.
CLI = ["-m", "safe_rlhf_lightning.cli.train"]
CLI_WITH_FAULTS = ["-c", "import tests.ppo_faults as faults; faults.run_cli()"]


def _ppo_overrides(
    model_folders: Path, benchmark_dir: Path, root: Path, steps: int = PPO_STEPS
) -> list[str]:
    return [
        "stage=ppo_lag",
        "debug=fast",
        "lambda_schedule=learned",
        "logger=csv",
        f"stage.max_steps={steps}",
        "stage.batch_size=4",
        "stage.num_return_sequences=2",
        "stage.max_new_tokens=8",
        "stage.minibatch_size=4",
        "stage.update_epochs=2",
        "stage.eval_max_new_tokens=8",
        "stage.eval_limit=8",
        "stage.ptx_coef=1.0",
        "stage.checkpoint_every=1",
        "stage.log_samples_every=1",
        "stage.save_critics=true",
        f"stage.actor_init={model_folders / 'sft'}",
        f"stage.reward_model={model_folders / 'reward'}",
        f"stage.cost_model={model_folders / 'cost'}",
        "data.prompt_train=[benchmark-prompts/train:0.01]",  # 11 prompts: 3 batches a pass
        "data.sft_train=[benchmark-sft/train:0.005]",  # 17 demonstrations: 5 batches a pass
        f"data.root={benchmark_dir}",
        f"paths.data_dir={root / 'data'}",
        f"paths.runs_dir={root / 'runs'}",
    ]


def _command(overrides: list[str], run_dir: Path, entry: list[str] = CLI) -> list[str]:
    return [sys.executable, *entry, *overrides, f"hydra.run.dir={run_dir}"]


def _environment() -> dict[str, str]:
    # The repository root on the path too: CLI_WITH_FAULTS imports the tests package.
    path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": path}


def _run(overrides: list[str], run_dir: Path, entry: list[str] = CLI) -> None:
    result = subprocess.run(
        _command(overrides, run_dir, entry),
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _checkpoint_step(run_dir: Path) -> int:
    """The PPO step of ``last.ckpt`` as the run's log reports it (0 = none yet)."""
    steps = [json.loads(line)["step"] for line in _lines(run_dir / "samples_train.jsonl")]
    return int(max(steps)) + 1 if steps else 0


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _kill_at_random(
    overrides: list[str],
    run_dir: Path,
    rng: random.Random,
    progress=_checkpoint_step,
    target: int | None = None,
    delay: float = 0.3,
    entry: list[str] = CLI,
) -> int:
    """Start the run, SIGKILL it at a random moment up to ``delay`` s after
    ``progress(run_dir)`` reached ``target`` (by default a random PPO step); return it."""
    # From step 2 on: rows of step k-1 mean the checkpoint after step k-2 is already written.
    target = rng.randrange(2, PPO_STEPS - 1) if target is None else target
    process = subprocess.Popen(
        _command(overrides, run_dir, entry),
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    try:
        while progress(run_dir) < target:
            if process.poll() is not None:
                pytest.fail(f"the run ended before step {target}: {process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no step {target} within {TIMEOUT} s")
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, delay))  # anywhere in the next step(s), or a checkpoint save
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    return target


def _kill_before_the_end(
    overrides: list[str], killed: Path, rng: random.Random, delay: float, **options
) -> int:
    """:func:`_kill_at_random` until the kill lands before the run's end: a run that finished
    first (a loaded machine can run steps faster than the ones the delay was sized by) is
    removed and started again with half the delay, three times at most. A test thus always
    resumes a run that was killed, and fails only if every try finished first."""
    for _ in range(3):
        target = _kill_at_random(overrides, killed, rng, delay=delay, **options)
        if not (killed / "model").exists():
            return target
        shutil.rmtree(killed)
        delay /= 2
    pytest.fail(f"the run finished before the kill in three tries (last target {target})")


def _outcome(run_dir: Path) -> dict:
    history = [json.loads(line) for line in _lines(run_dir / "history.jsonl")]

    def timing(key: str) -> bool:  # wall-clock figures differ between any two runs
        return key.endswith(("_seconds", "per_second")) or key == "seconds_per_step"

    return {
        "history": [{k: v for k, v in row.items() if not timing(k)} for row in history],
        "results": json.loads((run_dir / "results.json").read_text()).get("test"),
        "samples": _lines(run_dir / "samples_train.jsonl"),
        "weights": {  # the actor and every critic (a critic-free estimator saves none)
            folder.name: load_file(folder / "model.safetensors")
            for folder in sorted(run_dir.iterdir())
            if (folder / "model.safetensors").is_file()
        },
    }


def test_ppo_lagrangian_killed_at_a_random_step_resumes_to_the_same_end(
    model_folders, benchmark_dir, tmp_path
):
    overrides = _ppo_overrides(model_folders, benchmark_dir, tmp_path)
    _kill_resume_and_compare_ppo(overrides, tmp_path)


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_critic_free_ppo_lagrangian_killed_at_a_random_step_resumes_to_the_same_end(
    advantage, model_folders, benchmark_dir, tmp_path
):
    overrides = [*_ppo_overrides(model_folders, benchmark_dir, tmp_path), f"advantage={advantage}"]
    _kill_resume_and_compare_ppo(overrides, tmp_path)
    for run in ("straight", "killed"):  # save_critics is on, but there is no critic to save
        assert sorted(_outcome(tmp_path / run)["weights"]) == ["model"]


def test_ppo_under_two_constraints_killed_at_a_random_step_resumes_to_the_same_end(
    model_folders, benchmark_dir, tmp_path
):
    """Both multipliers, their windows and both cost critics come back (their per-step λ and
    costs are in the compared history)."""
    overrides = [
        *_ppo_overrides(model_folders, benchmark_dir, tmp_path),
        "constraints=harm_and_length",
        "constraints.length.limit=4",
    ]
    _kill_resume_and_compare_ppo(overrides, tmp_path)
    straight = _outcome(tmp_path / "straight")
    assert {"harm_critic", "length_critic"} <= set(straight["weights"])
    assert len({row["lambda/length"] for row in straight["history"]}) > 1  # λ_length moved


def test_ppo_with_skipped_updates_killed_at_a_random_step_resumes_to_the_same_end(
    model_folders, benchmark_dir, tmp_path
):
    """NaN in the first minibatch of steps 1 and 5 and in the costs of step 3, skipped; a
    checkpoint every 2 PPO steps (kept on PPO steps although Lightning's count shifts)."""
    overrides = [
        *_ppo_overrides(model_folders, benchmark_dir, tmp_path),
        "stage.skip_nonfinite=true",
        "stage.checkpoint_every=2",
    ]
    # From step 3 on: rows of step k-1 mean the checkpoint after step 2 is already written.
    _kill_resume_and_compare_ppo(overrides, tmp_path, CLI_WITH_FAULTS, first_target=3)
    history = _outcome(tmp_path / "straight")["history"]
    assert [row["step"] for row in history] == [0, 1, 2, 4, 5, 6, 7]  # step 3's rollout skipped
    assert [row.get("skipped_batches", 0) for row in history] == [0, 1, 1, 2, 3, 3, 3]


def _kill_resume_and_compare_ppo(
    overrides: list[str], root: Path, entry: list[str] = CLI, first_target: int = 2
) -> None:
    seed = random.SystemRandom().randrange(10**6)  # not the suite's seeded RNG
    rng = random.Random(seed)
    _run(overrides, root / "straight", entry)
    # The kill lands within one step's time of the target (at least two steps remain), so that a
    # fast step (no critics) cannot finish the run first.
    history = [json.loads(line) for line in _lines(root / "straight" / "history.jsonl")]
    delay = min(0.3, min(row["seconds_per_step"] for row in history))
    killed = root / "killed"
    target = rng.randrange(first_target, PPO_STEPS - 1)
    _kill_before_the_end(overrides, killed, rng, delay, target=target, entry=entry)
    assert not (killed / "model").exists()  # killed before the end (else the test proves nothing)
    checkpoint = killed / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file(), f"no checkpoint after step {target} (seed {seed})"
    _run(overrides, killed, entry)  # resumes from last.ckpt
    _assert_same_end(
        _outcome(root / "straight"),
        _outcome(killed),
        f"killed after step {target} (random seed {seed})",
    )
    assert len(list(killed.glob("logs/version_*"))) == 2  # each launch kept its own metrics log


def _assert_same_end(straight: dict, resumed: dict, context: str) -> None:
    assert resumed["history"] == straight["history"], context
    assert resumed["results"] == straight["results"], context
    assert resumed["samples"] == straight["samples"], context
    for name, tensors in straight["weights"].items():
        for key, tensor in tensors.items():
            assert resumed["weights"][name][key].equal(tensor), f"{name}.{key}: {context}"


def _preference_overrides(stage: str, model_folders: Path) -> list[str]:
    return [
        f"stage={stage}",
        f"stage.init_from={model_folders / 'sft'}",
        "stage.eval_limit=8",
        "data.preference_train=[benchmark-preference/train:0.003]",  # 34 pairs: 9 batches a pass
    ]


STAGES = {
    "sft": lambda folders: [
        "stage=sft", "stage.eval_limit=0", "model=pretrained",
        f"model.name_or_path={folders / 'sft'}",  # no tokenizer to train: a quick start
        "data.sft_train=[benchmark-sft/train:0.01]",  # 34 demonstrations: 9 batches a pass
    ],
    "reward": partial(_preference_overrides, "reward"),
    "cost": partial(_preference_overrides, "cost"),
}  # fmt: skip


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_killed_at_a_random_moment_resumes_to_the_same_model(
    stage, model_folders, benchmark_dir, tmp_path
):
    seed = random.SystemRandom().randrange(10**6)  # not the suite's seeded RNG
    rng = random.Random(seed)
    overrides = [
        *STAGES[stage](model_folders),
        "debug=fast",
        "logger=csv",
        "stage.max_steps=100",
        "stage.batch_size=4",
        "stage.checkpoint_every=3",
        f"data.root={benchmark_dir}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.runs_dir={tmp_path / 'runs'}",
    ]
    _run(overrides, tmp_path / "straight")
    killed = tmp_path / "killed"
    _kill_before_the_end(overrides, killed, rng, 1.5, progress=_first_checkpoint, target=1)
    assert not (killed / "model").exists()  # killed before the end (else the test proves nothing)
    _run(overrides, killed)
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(killed / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(resumed[k].equal(v) for k, v in straight.items()), f"seed {seed}"
    results = [
        json.loads((d / "results.json").read_text()) for d in (tmp_path / "straight", killed)
    ]
    key = "val" if stage == "sft" else "test"  # held-out loss; held-out pair accuracies
    assert results[0][key] == results[1][key], f"seed {seed}"


def _first_checkpoint(run_dir: Path) -> int:
    """1 once the run wrote its first checkpoint."""
    return int((run_dir / "checkpoints" / "last.ckpt").exists())
