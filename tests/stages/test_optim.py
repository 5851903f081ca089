"""AdamW and its schedule: the fused kernel is the loop's AdamW up to float rounding, it is every
trained stage's default, and the stage option reaches the optimizer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from safe_rlhf_lightning.config import SFTStageConfig
from safe_rlhf_lightning.stages.optim import adamw_with_warmup, configure_adamw


def _train_steps(steps: int, fused: bool = False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 1)
    )
    optimizer, scheduler = adamw_with_warmup(
        model,
        lr=1e-2,
        weight_decay=0.1,
        betas=(0.9, 0.95),
        scheduler="cosine",
        warmup_ratio=0.2,
        total_steps=10,
        fused=fused,
    )
    inputs = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        optimizer.zero_grad()
        model(inputs).pow(2).mean().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer


def _train(fused: bool):
    return _train_steps(10, fused)


def test_fused_adamw_equals_the_loop_up_to_rounding():
    looped, loop_optimizer = _train(fused=False)
    fused, fused_optimizer = _train(fused=True)
    assert fused_optimizer.defaults["fused"] is True
    assert not loop_optimizer.defaults["fused"]
    initial, _ = _train_steps(0)
    for a, b, start in zip(
        looped.parameters(), fused.parameters(), initial.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, start)  # both trained: the comparison is not of two copies
    # Weight decay is off for 1-D parameters in both (the decay groups).
    assert [g["weight_decay"] for g in fused_optimizer.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize("stage", ["sft", "reward", "cost", "ppo_lag", "dpo"])
@pytest.mark.parametrize("override", [[], ["stage.fused_optimizer=false"]])
def test_fused_adamw_is_every_stages_default_and_can_be_turned_off(stage, override, tmp_path):
    from safe_rlhf_lightning.cli.runner import validate_config
    from tests.conftest import compose_run_config

    typed = validate_config(compose_run_config([f"stage={stage}", *override], tmp_path))
    assert typed.stage.fused_optimizer is not bool(override)  # the config the module takes whole


@pytest.mark.parametrize("fused", [True, False])
def test_configure_adamw_builds_the_optimizer_the_config_names(fused):
    stage = SimpleNamespace(
        model=torch.nn.Linear(4, 2),
        config=SFTStageConfig(fused_optimizer=fused),
        trainer=SimpleNamespace(estimated_stepping_batches=10),
    )
    optimizer = configure_adamw(stage)["optimizer"]
    assert bool(optimizer.defaults["fused"]) is fused
