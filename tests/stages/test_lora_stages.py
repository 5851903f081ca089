"""SFT, the cost model and PPO-Lagrangian with LoRA and activation checkpointing, through the
CLI's runners: only the adapters and score heads train, the base weights stay put, the folders
are plain Hugging Face folders holding the merged models, and a run resumes from its LoRA
checkpoint."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from safe_rlhf_lightning.cli import ppo_lag as ppo_runner
from safe_rlhf_lightning.cli import preference as preference_runner
from safe_rlhf_lightning.cli import sft as sft_runner
from safe_rlhf_lightning.cli.models import prepare_trained_model
from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.models import ScoreModel, has_lora
from tests.conftest import TINY_TEST_MODEL, compose_run_config

LORA = ["model.lora.enabled=true", "model.lora.r=4", "model.gradient_checkpointing=true"]


def recording(stage_class, built: list[dict]):
    """A subclass of ``stage_class`` that records, when it is built, the module, a copy of its
    parameters and the names of those that require gradients."""

    class Recording(stage_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(
                {
                    "module": self,
                    "before": {n: p.detach().clone() for n, p in self.named_parameters()},
                    "trained": {n for n, p in self.named_parameters() if p.requires_grad},
                }
            )

    return Recording


def capture_module(monkeypatch, runner_module, name: str) -> list[dict]:
    """Replaces the runner's stage class ``name`` (or each class of a ``{stage: class}`` table)
    by a recording subclass; returns the list the records go to."""
    built: list[dict] = []
    target = getattr(runner_module, name)
    replacement = (
        {stage: recording(cls, built) for stage, cls in target.items()}
        if isinstance(target, dict)
        else recording(target, built)
    )
    monkeypatch.setattr(runner_module, name, replacement)
    return built


def check_training(record: dict, state: dict, owners: tuple[str, ...]) -> None:
    """Only adapters and score heads require gradients and moved; every other weight of the
    trained models (``owners``) is where it started, in the checkpoint Lightning wrote."""
    trained, before = record["trained"], record["before"]
    assert trained and all(".lora_" in n or ".score_head." in n for n in trained), trained
    assert {n.split(".")[0] for n in trained} == set(owners)
    for name, start in before.items():
        if name.startswith(owners):
            moved = not torch.equal(state[name], start)
            assert moved == (name in trained), name


def merged_from_checkpoint(model, state: dict, prefix: str, typed):
    """``model`` (the stage's starting weights) with the run's LoRA and the checkpoint's weights
    under ``prefix``: the trained model as it was before its adapters were merged."""
    prepare_trained_model(model, typed.model)
    model.load_state_dict(
        {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    )
    assert has_lora(model)
    return model.eval()


@pytest.fixture
def token_batch():
    ids = torch.tensor([[5, 17, 42, 8, 99, 3, 64], [7, 7, 12, 250, 31, 9, 2]])
    return ids, torch.ones_like(ids, dtype=torch.bool)


def test_sft_with_lora_trains_adapters_only_saves_the_merged_model_and_resumes(
    tmp_path, benchmark_dir, monkeypatch, caplog, token_batch
):
    built = capture_module(monkeypatch, sft_runner, "SFTModule")
    overrides = [
        "debug=fast",
        "stage.max_steps=2",
        "stage.lr_scheduler=constant",
        "stage.eval_limit=0",
        *TINY_TEST_MODEL,
        *LORA,
    ]
    cfg = compose_run_config(overrides, tmp_path, benchmark_dir)
    run_stage(cfg)
    run_dir = tmp_path / "run"
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    check_training(built[0], state, owners=("model",))
    assert built[0]["module"].model.is_activation_checkpointing

    # The folder is a plain causal LM: the merged adapters, nothing else to load.
    saved = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert not any("lora" in name for name in saved.state_dict())
    ids, _ = token_batch
    start = AutoModelForCausalLM.from_pretrained(run_dir / "model")  # every weight is replaced
    adapted = merged_from_checkpoint(start, state, "model.", validate_config(cfg))
    with torch.no_grad():
        torch.testing.assert_close(saved(ids).logits, adapted(ids).logits, atol=1e-5, rtol=1e-5)

    cfg = compose_run_config([*overrides, "stage.max_steps=3"], tmp_path, benchmark_dir)
    with caplog.at_level("INFO"):
        run_stage(cfg)
    assert any("resuming from" in message for message in caplog.messages)
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 3
    adapter = "model.model.layers.0.self_attn.q_proj.lora_B.default.weight"
    assert not torch.equal(resumed["state_dict"][adapter], state[adapter])  # trained on


@pytest.mark.slow
def test_cost_model_with_lora_trains_adapters_and_a_new_head_and_saves_a_plain_folder(
    model_folders, tmp_path, benchmark_dir, monkeypatch, token_batch
):
    built = capture_module(monkeypatch, preference_runner, "MODULES")
    overrides = [
        "stage=cost",
        "debug=fast",
        "stage.max_steps=2",
        "stage.eval_limit=0",
        f"stage.init_from={model_folders / 'sft'}",
        *LORA,
    ]
    cfg = compose_run_config(overrides, tmp_path, benchmark_dir)
    run_stage(cfg)
    run_dir = tmp_path / "run"
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    check_training(built[0], state, owners=("model",))
    saved = ScoreModel.from_pretrained(run_dir / "model")
    assert saved.score_type == "cost" and not any("lora" in k for k in saved.state_dict())
    start = ScoreModel.from_pretrained(run_dir / "model")  # every weight is replaced
    trained = merged_from_checkpoint(start, state, "model.", validate_config(cfg))
    ids, mask = token_batch
    with torch.no_grad():
        torch.testing.assert_close(
            saved(ids, mask).end_scores, trained(ids, mask).end_scores, atol=1e-5, rtol=1e-5
        )


def test_ppo_lagrangian_with_lora_trains_adapters_and_heads_and_leaves_frozen_models_alone(
    model_folders, tmp_path, benchmark_dir, monkeypatch, caplog, token_batch
):
    built = capture_module(monkeypatch, ppo_runner, "PPOLagModule")
    overrides = [
        "stage=ppo_lag",
        "debug=fast",
        "lambda_schedule=learned",
        "stage.max_steps=2",
        "stage.batch_size=4",
        "stage.num_return_sequences=2",
        "stage.max_new_tokens=8",
        "stage.minibatch_size=8",
        "stage.update_epochs=1",
        "stage.eval_limit=0",
        "stage.save_critics=true",
        f"stage.actor_init={model_folders / 'sft'}",
        f"stage.reward_model={model_folders / 'reward'}",
        f"stage.cost_model={model_folders / 'cost'}",
        *LORA,
    ]
    cfg = compose_run_config(overrides, tmp_path, benchmark_dir)
    run_stage(cfg)
    run_dir = tmp_path / "run"
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    owners = ("actor", "reward_critic", "cost_critic")
    check_training(built[0], state, owners)
    module = built[0]["module"]
    for name in ("reference", "reward_model", "cost_model"):  # frozen: no adapters, no recompute
        model = getattr(module, name)
        transformer = model.model if isinstance(model, ScoreModel) else model
        assert not has_lora(model) and not transformer.is_activation_checkpointing, name
        assert not any(p.requires_grad for p in model.parameters()), name
        for key, parameter in model.named_parameters():
            assert torch.equal(parameter, built[0]["before"][f"{name}.{key}"]), key
    assert module.actor.is_activation_checkpointing
    assert module.reward_critic.model.is_activation_checkpointing

    # Plain folders holding the merged models.
    typed = validate_config(cfg)
    ids, mask = token_batch
    saved_actor = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    actor = merged_from_checkpoint(
        AutoModelForCausalLM.from_pretrained(model_folders / "sft"), state, "actor.", typed
    )
    with torch.no_grad():
        torch.testing.assert_close(saved_actor(ids).logits, actor(ids).logits, atol=1e-5, rtol=1e-5)
    for name, start in (("reward_critic", "reward"), ("cost_critic", "cost")):
        saved = ScoreModel.from_pretrained(run_dir / name)
        critic = ScoreModel.from_pretrained(
            model_folders / start, score_type="critic", do_normalize=False
        )
        critic = merged_from_checkpoint(critic, state, f"{name}.", typed)
        with torch.no_grad():
            torch.testing.assert_close(
                saved(ids, mask).scores, critic(ids, mask).scores, atol=1e-5, rtol=1e-5
            )

    cfg = compose_run_config([*overrides, "stage.max_steps=3"], tmp_path, benchmark_dir)
    with caplog.at_level("INFO"):
        results = run_stage(cfg)
    assert any("resuming from" in message for message in caplog.messages)
    assert results["train"]["steps"] == 3
