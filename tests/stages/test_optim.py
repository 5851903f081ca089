"""AdamW and its schedule: the fused kernel is the loop's AdamW up to float rounding, and the
stage option reaches every trained stage's optimizer."""

from __future__ import annotations

import pytest
import torch

from safe_rlhf_lightning.stages.optim import adamw_with_warmup


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


@pytest.mark.parametrize("stage", ["sft", "reward", "cost", "ppo_lag"])
def test_the_stage_option_reaches_the_module(stage, tmp_path):
    from safe_rlhf_lightning.cli.runner import validate_config
    from tests.conftest import compose_run_config

    typed = validate_config(
        compose_run_config([f"stage={stage}", "stage.fused_optimizer=true"], tmp_path)
    )
    assert typed.stage.fused_optimizer is True  # the config every stage module takes whole
