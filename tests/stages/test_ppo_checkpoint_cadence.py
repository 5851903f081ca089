"""Periodic PPO checkpoints come due on PPO steps, whatever rollouts or minibatches are skipped
(``stage.skip_nonfinite``), and a run resumed from its final checkpoint does nothing more."""

from __future__ import annotations

import json

import torch

from safe_rlhf_lightning.checkpoint_io import AtomicCheckpointIO
from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.stages import updates_per_rollout
from tests.conftest import compose_run_config
from tests.ppo_faults import inject_nonfinite


def test_ppo_lag_checkpoints_stay_on_ppo_steps_after_skipped_updates(
    model_folders, benchmark_dir, tmp_path, monkeypatch
):
    inject_nonfinite(monkeypatch.setattr, minibatch_steps=(1,), cost_steps=(3,))
    saved = []
    real_save = AtomicCheckpointIO.save_checkpoint

    def recording_save(self, checkpoint, path, storage_options=None):
        saved.append(checkpoint["ppo_step"])
        real_save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording_save)
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            "logger=none",
            "stage.max_steps=6",
            "stage.checkpoint_every=2",
            "stage.skip_nonfinite=true",
            "stage.eval_limit=0",
            "stage.batch_size=2",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=4",
            "stage.minibatch_size=2",
            "stage.update_epochs=1",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    run_stage(cfg)
    # Step 1 made one optimizer step of two, step 3 none: Lightning's count ends 3 short.
    updates = updates_per_rollout(4, 1, 2)
    assert saved == [2, 4, 6]
    run_dir = tmp_path / "run"
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 6 * updates - 3
    assert checkpoint["skipped_batches"] == 2
    history = (run_dir / "history.jsonl").read_text()
    assert [json.loads(row)["step"] for row in history.splitlines()] == [0, 1, 2, 4, 5]

    # Killed after the final checkpoint, before the folders were written: the resumed run
    # does no step more, though Lightning's optimizer-step limit is not reached.
    run_stage(cfg)
    assert saved == [2, 4, 6]
    assert (run_dir / "history.jsonl").read_text() == history
