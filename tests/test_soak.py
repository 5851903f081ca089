"""Soak: PPO-Lagrangian for 160 tiny steps, SIGKILLed at several random moments (in a step or
in a checkpoint save) and resumed each time, ends bit for bit like an uninterrupted run: weights
of the actor and both critics, history, samples and evaluation (about 2 minutes on 2 cores).

Both train loaders start many new passes; a checkpoint every few PPO steps makes every resume
redo the steps after the last one. The helpers are those of ``tests/test_kill_resume.py``."""

from __future__ import annotations

import random

import pytest

from tests.test_kill_resume import (
    _assert_same_end,
    _checkpoint_step,
    _kill_at_random,
    _outcome,
    _ppo_overrides,
    _run,
)

pytestmark = pytest.mark.slow

SOAK_STEPS = 160


def test_ppo_killed_and_resumed_many_times_ends_like_an_uninterrupted_run(
    model_folders, benchmark_dir, tmp_path
):
    seed = random.SystemRandom().randrange(10**6)  # not the suite's seeded RNG
    rng = random.Random(seed)
    overrides = [
        *_ppo_overrides(model_folders, benchmark_dir, tmp_path, steps=SOAK_STEPS),
        "stage.checkpoint_every=4",
    ]
    _run(overrides, tmp_path / "straight")
    killed, kills = tmp_path / "killed", []
    while True:
        # Past the rows the previous launch wrote beyond its checkpoint (dropped on resume).
        target = _checkpoint_step(killed) + rng.randint(15, 60)
        if target > SOAK_STEPS - 15:
            break
        kills.append(_kill_at_random(overrides, killed, rng, target=target))
        assert not (killed / "model").exists(), f"finished before the kill (seed {seed})"
    _run(overrides, killed)
    context = f"killed after steps {kills} (random seed {seed})"
    assert len(kills) >= 2, context
    _assert_same_end(_outcome(tmp_path / "straight"), _outcome(killed), context)
    assert len(list(killed.glob("logs/version_*"))) == len(kills) + 1  # one log per launch
