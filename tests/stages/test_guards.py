"""Numerical guards: NaN/inf stops a run before any update (checkpoint intact) or is skipped."""

from __future__ import annotations

import math

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.data import PromptDataModule
from safe_rlhf_lightning.lagrange import LearnedLambda
from safe_rlhf_lightning.stages import FiniteGuard, NonFiniteError, updates_per_rollout
from safe_rlhf_lightning.stages.guards import nonfinite_names
from tests.conftest import compose_run_config, quick_trainer
from tests.stages.test_ppo_stage import make_module


def test_nonfinite_names_lists_exactly_the_bad_values():
    values = {
        "ok": torch.tensor([1.0, 2.0]),
        "nan": torch.tensor([1.0, float("nan")]),
        "inf": -math.inf,
        "absent": None,
        "scalar": 3.0,
    }
    assert nonfinite_names(values) == ["nan", "inf"]


def test_guard_raises_naming_the_value_and_step_or_skips_and_counts():
    with pytest.raises(NonFiniteError, match=r"non-finite loss in the minibatch loss of step 7"):
        FiniteGuard()(7, "minibatch loss", loss=torch.tensor(float("nan")))
    guard = FiniteGuard(skip=True)
    assert guard(1, "loss", loss=torch.tensor(1.0))
    assert not guard(2, "loss", loss=torch.tensor(float("inf")))
    assert not guard(3, "loss", loss=torch.tensor(float("nan")))
    assert guard.skipped == 2


class _NaNReward(torch.nn.Module):
    """Wraps a score model; every score after the first ``good`` calls is NaN."""

    def __init__(self, model, good: int) -> None:
        super().__init__()
        self.model, self.good, self.calls = model, good, 0

    def forward(self, *args, **kwargs):
        output = self.model(*args, **kwargs)
        self.calls += 1
        if self.calls > self.good:
            output.end_scores.fill_(float("nan"))
        return output


def _ppo(small_tokenizer, benchmark_dir, **options):
    module = make_module(
        small_tokenizer, LearnedLambda(cost_limit=-10.0, lr=0.5), max_steps=3, **options
    )
    module.reward_model = _NaNReward(module.reward_model, good=1)  # the 2nd rollout is NaN
    before = {n: p.detach().clone() for n, p in module.actor.named_parameters()}
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = quick_trainer(max_steps=10 * updates_per_rollout(8, 2, 4))
    return module, before, trainer, prompts.train_dataloader()


def test_ppo_stops_on_a_nan_reward_before_updating_with_it(small_tokenizer, benchmark_dir):
    module, _, trainer, loader = _ppo(small_tokenizer, benchmark_dir)
    with pytest.raises(NonFiniteError, match=r"non-finite reward in the rollout of step 1"):
        trainer.fit(module, train_dataloaders=loader)
    assert module.ppo_step == 1  # step 0 trained, step 1 stopped before λ and the updates
    assert [row["step"] for row in module.history] == [0.0]
    assert all(torch.isfinite(p).all() for p in module.actor.parameters())


def test_ppo_skips_nan_rollouts_when_asked_and_counts_them(small_tokenizer, benchmark_dir):
    module, _, trainer, loader = _ppo(small_tokenizer, benchmark_dir, skip_nonfinite=True)
    trainer.fit(module, train_dataloaders=loader)
    assert module.ppo_step == 3 and module.guard.skipped == 2  # steps 1 and 2 skipped
    assert [row["step"] for row in module.history] == [0.0]
    assert trainer.global_step == updates_per_rollout(8, 2, 4)  # only step 0 updated
    assert math.isfinite(module.schedule.lambda_value)
    assert len(module.schedule.episode_costs) == 8


def test_sft_stage_stops_on_nan_with_its_last_checkpoint_intact(
    monkeypatch, tmp_path, benchmark_dir
):
    import safe_rlhf_lightning.stages.sft as sft_module

    real_loss, calls = sft_module.sft_loss, []

    def nan_after_five(*args, **kwargs):
        loss, stats = real_loss(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan") if len(calls) > 5 else loss), stats

    monkeypatch.setattr(sft_module, "sft_loss", nan_after_five)
    cfg = compose_run_config(
        [
            "stage=sft",
            "debug=fast",
            "stage.max_steps=10",
            "stage.checkpoint_every=2",
            "stage.eval_limit=0",
            "trainer.limit_val_batches=0",
            "logger=none",
            "model.tiny.hidden_size=32",
            "model.tiny.num_layers=1",
            "model.tiny.num_heads=2",
            "model.tiny.intermediate_size=64",
        ],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(NonFiniteError, match="step 5"):
        run_stage(cfg)
    run_dir = tmp_path / "run"
    assert not (run_dir / "model").exists()  # no model folder from a broken run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
