"""PPO-Lagrangian: rollouts, a smoke run of every λ schedule, checkpoints and the CLI runner."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError, PPOLagStageConfig
from safe_rlhf_lightning.data import PromptDataModule
from safe_rlhf_lightning.lagrange import FixedLambda, LearnedLambda, NoLambda, PIDLambda
from safe_rlhf_lightning.models import ScoreModel, build_tiny_causal_lm, train_bpe_tokenizer
from safe_rlhf_lightning.rollout import (
    Retokenizer,
    SamplingOptions,
    end_score,
    response_logprobs,
    response_mask_until_eos,
    sample,
)
from safe_rlhf_lightning.stages import PPOLagModule, updates_per_rollout
from safe_rlhf_lightning.stages.rng_state import capture_rng_states
from safe_rlhf_lightning.types import PromptBatch
from tests.conftest import TEST_MODEL_SIZE, compose_run_config, quick_trainer

SIZE = TEST_MODEL_SIZE


def tiny_lm(tokenizer, seed=0):
    return build_tiny_causal_lm(tokenizer, seed=seed, **SIZE)


def score_model(tokenizer, score_type, seed):
    torch.manual_seed(seed)
    return ScoreModel(tiny_lm(tokenizer, seed), score_type=score_type)


def test_response_mask_until_eos():
    eos = 2
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 9], [5, 6, 7, 8, 9]])
    expected = [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert response_mask_until_eos(ids, eos).long().tolist() == expected


def test_rollout_logprobs_match_the_sampling_distribution(small_tokenizer):
    """The forward pass on left-padded rollouts gives the distribution generate sampled from."""
    torch.manual_seed(0)
    actor = tiny_lm(small_tokenizer).eval()
    prompts = ["USER: How do I bake bread? ASSISTANT:", "USER: Hi ASSISTANT:"]
    encoded = small_tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    assert encoded["attention_mask"][1, 0] == 0  # the second prompt really is left padded
    out = actor.generate(
        **encoded,
        do_sample=True,
        max_new_tokens=6,
        top_k=0,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=small_tokenizer.pad_token_id,
        eos_token_id=small_tokenizer.eos_token_id,
    )
    prompt_length = encoded["input_ids"].shape[1]
    response = out.sequences[:, prompt_length:]
    mask = response_mask_until_eos(response, small_tokenizer.eos_token_id)
    full_mask = torch.cat([encoded["attention_mask"].bool(), mask], dim=1)
    ours = response_logprobs(actor, out.sequences, full_mask, prompt_length)
    logits = torch.stack(out.logits, dim=1).log_softmax(-1)  # (B, T, V)
    theirs = logits.gather(-1, response.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=1e-4)


def test_sample_shapes_and_masks(small_tokenizer):
    actor = tiny_lm(small_tokenizer)
    encoded = small_tokenizer(
        ["USER: a ASSISTANT:", "USER: b c d ASSISTANT:"],
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    batch = PromptBatch(encoded["input_ids"], encoded["attention_mask"].bool())
    options = SamplingOptions(max_new_tokens=5, num_return_sequences=3)
    ids, mask, response_mask = sample(
        actor,
        batch,
        options,
        eos_token_id=small_tokenizer.eos_token_id,
        pad_token_id=small_tokenizer.pad_token_id,
    )
    assert ids.shape[0] == 6 and response_mask.shape[1] <= 5
    assert torch.equal(ids[0, : batch.input_ids.shape[1]], batch.input_ids[0])  # rows 0-2: prompt 0
    assert torch.equal(ids[3, : batch.input_ids.shape[1]], batch.input_ids[1])
    assert torch.equal(mask[:, batch.input_ids.shape[1] :], response_mask)
    assert response_mask[:, 0].all()  # every response has at least one token


def test_retokenizer_scores_the_same_text(small_tokenizer):
    other = train_bpe_tokenizer(
        ["a different corpus of words for another tokenizer"] * 5, vocab_size=300
    )
    model = score_model(other, "reward", seed=1).eval()
    texts = ["USER: How do I bake bread? ASSISTANT: Knead the dough."]
    encoded = small_tokenizer(texts, return_tensors="pt")
    retokenize = Retokenizer(small_tokenizer, other, max_length=128)
    ours = end_score(model, encoded["input_ids"], encoded["attention_mask"].bool(), retokenize)
    direct = other([texts[0] + other.eos_token], add_special_tokens=False, return_tensors="pt")
    expected = model(direct["input_ids"], direct["attention_mask"].bool()).end_scores[:, 0]
    torch.testing.assert_close(ours, expected)


MODULE_ARGUMENTS = ("decode", "observer", "sample_sink")


def ppo_config(**fields) -> PPOLagStageConfig:
    """The tests' PPO settings: a few tokens, two responses per prompt, two minibatches."""
    settings = {
        "max_new_tokens": 8,
        "num_return_sequences": 2,
        "update_epochs": 2,
        "minibatch_size": 4,
        "lr": 1e-2,
        "critic_lr": 1e-2,
        "lr_scheduler": "constant",
        "lr_warmup_ratio": 0.0,
        **fields,
    }
    return PPOLagStageConfig(**settings)


def make_module(tokenizer, schedule, **overrides):
    """A module on tiny random models; ``overrides`` are PPOLagStageConfig fields or the module's
    ``decode``, ``observer`` and ``sample_sink``."""
    actor = tiny_lm(tokenizer, seed=0)
    reward_model = score_model(tokenizer, "reward", seed=1)
    cost_model = score_model(tokenizer, "cost", seed=2)
    options = {
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "decode": lambda ids: tokenizer.batch_decode(ids, skip_special_tokens=True),
        **{k: v for k, v in overrides.items() if k in MODULE_ARGUMENTS},
    }
    config = ppo_config(**{k: v for k, v in overrides.items() if k not in MODULE_ARGUMENTS})
    two = schedule.two_streams
    return PPOLagModule(
        actor,
        copy.deepcopy(actor),
        reward_model,
        cost_model,
        ScoreModel(tiny_lm(tokenizer, seed=3), score_type="critic"),
        ScoreModel(tiny_lm(tokenizer, seed=4), score_type="critic") if two else None,
        schedule,
        config,
        **options,
    )


SCHEDULES = {
    "learned": lambda: LearnedLambda(cost_limit=-10.0, init=1.0, lr=0.5),
    "pid": lambda: PIDLambda(cost_limit=-10.0),
    "fixed": lambda: FixedLambda(nu=2.0),
    "none": lambda: NoLambda(),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_two_ppo_steps_train_actor_and_critics_and_freeze_the_rest(
    name, small_tokenizer, benchmark_dir
):
    schedule = SCHEDULES[name]()
    observed = []
    sink_rows = []
    module = make_module(
        small_tokenizer,
        schedule,
        observer=lambda prompts, responses: observed.append(len(responses)) or {"oracle_x": 1.0},
        sample_sink=lambda step, rows: sink_rows.extend(rows),
        log_samples_every=1,
        max_steps=2,
        whiten_advantages=name == "pid",  # the whitened path too
    )
    trained = {id(m) for m in module.trained_models()}
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    updates = updates_per_rollout(4 * 2, 2, 4)
    trainer = quick_trainer(max_steps=10 * updates)  # the module stops itself after 2 PPO steps
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())

    assert module.ppo_step == 2 and len(module.history) == 2
    assert trainer.global_step == 2 * updates
    metrics = trainer.callback_metrics
    keys = ["reward", "cost", "lambda", "kl_divergence", "actor_loss", "reward_critic_loss"]
    keys += ["episode_cost", "clip_fraction", "approx_kl", "tokens_per_second", "oracle_x"]
    keys += ["reward_critic_explained_variance", "mean_generated_length"]
    for key in keys:
        assert torch.isfinite(metrics[f"train/{key}"]), key
    assert ("train/cost_critic_loss" in metrics) == schedule.two_streams
    assert observed == [8, 8] and len(sink_rows) == 16
    assert {"prompt", "response", "reward", "cost", "step"} <= set(sink_rows[0])

    # Every parameter of the trained models moved; the frozen models did not, nor their modes.
    for model_name, parameter in module.named_parameters():
        owner = model_name.split(".")[0]
        changed = not torch.equal(parameter, before[model_name])
        if owner in ("reference", "reward_model", "cost_model"):
            assert not changed and not parameter.requires_grad, model_name
        else:
            assert id(getattr(module, owner)) in trained
    for owner in ("actor", "reward_critic") + (("cost_critic",) if schedule.two_streams else ()):
        moved = [
            not torch.equal(p, before[f"{owner}.{n}"])
            for n, p in getattr(module, owner).named_parameters()
        ]
        assert all(moved), f"{owner}: {moved.count(False)} parameters did not move"
    assert not module.reference.training and not module.reward_model.training
    assert module.reward_model.normalizer.count.item() == 0  # frozen R kept its statistics
    if name in ("learned", "pid"):  # cost far above the limit: λ rose
        assert schedule.lambda_value > 1.0
    if name == "none":
        assert schedule.lambda_value == 0.0


def test_checkpoint_holds_schedule_history_and_rng_but_no_frozen_weights(
    small_tokenizer, benchmark_dir, tmp_path
):
    schedule = LearnedLambda(cost_limit=-10.0, lr=0.5)
    module = make_module(small_tokenizer, schedule, max_steps=1)
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = quick_trainer(max_steps=100, enable_checkpointing=True, default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())
    path = tmp_path / "ppo.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=False)
    assert not any(
        k.startswith(("reference.", "reward_model.", "cost_model."))
        for k in checkpoint["state_dict"]
    )
    assert any(k.startswith("cost_critic.") for k in checkpoint["state_dict"])
    assert checkpoint["ppo_step"] == 1 and len(checkpoint["ppo_history"]) == 1
    assert {"torch", "python", "numpy"} <= set(checkpoint["rng_states"])
    assert len(checkpoint["rng_states_per_rank"]) == 1  # one process: its own states

    # A fresh module resumes the λ schedule (value, optimizer, window) and the step count.
    fresh_schedule = LearnedLambda(cost_limit=-10.0, lr=0.5)
    fresh = make_module(small_tokenizer, fresh_schedule, max_steps=2)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh_schedule.lambda_value == pytest.approx(schedule.lambda_value)
    assert list(fresh_schedule.episode_costs) == list(schedule.episode_costs)
    assert fresh.ppo_step == 1
    with pytest.raises(ValueError, match="LearnedLambda λ schedule, this run uses PIDLambda"):
        make_module(small_tokenizer, PIDLambda(cost_limit=0.0)).on_load_checkpoint(checkpoint)
    # Each rank restores its own generators when the world size matches; rank 0's otherwise.
    torch.manual_seed(11)
    own = capture_rng_states()
    torch.manual_seed(22)
    rank0 = capture_rng_states()
    fresh.on_load_checkpoint({**checkpoint, "rng_states": rank0, "rng_states_per_rank": [own]})
    assert torch.equal(torch.get_rng_state(), own["torch"])
    fresh.on_load_checkpoint({**checkpoint, "rng_states": rank0, "rng_states_per_rank": [own] * 2})
    assert torch.equal(torch.get_rng_state(), rank0["torch"])
    # Trained weights missing (a run resumed with other model.lora settings): an error, not a
    # silent restart of the actor from its initial weights.
    weights = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("actor.")}
    with pytest.raises(ValueError, match=r"lacks \d+ weights of the trained models.*actor\."):
        fresh.on_load_checkpoint({**checkpoint, "state_dict": weights})


def test_two_stream_schedule_needs_a_cost_critic(small_tokenizer):
    with pytest.raises(ValueError, match="cost critic"):
        module = make_module(small_tokenizer, NoLambda())  # builds without a cost critic
        PPOLagModule(
            module.actor,
            module.reference,
            module.reward_model,
            module.cost_model,
            module.reward_critic,
            None,
            LearnedLambda(cost_limit=0.0),
            ppo_config(),
            eos_token_id=0,
            pad_token_id=0,
        )


@pytest.mark.parametrize(("schedule", "ptx_coef"), [("learned", 1.0), ("none", 0.0)])
def test_stage_run_writes_actor_curves_history_and_oracle_summary(
    schedule, ptx_coef, model_folders, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            f"lambda_schedule={schedule}",
            "stage.max_steps=2",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.eval_max_new_tokens=8",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
            "stage.log_samples_every=1",
            "stage.save_critics=true",
            f"stage.ptx_coef={ptx_coef}",
            "stage.evaluate_before_training=true",
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / "model" / "config.json").is_file()
    assert (run_dir / "reward_critic" / "config.json").is_file()
    assert (run_dir / "cost_critic").exists() == (schedule == "learned")
    assert (run_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert [row["step"] for row in history] == [0.0, 1.0]
    assert ("ptx_loss" in history[0]) == (ptx_coef > 0)  # SFT batches mixed into the updates
    assert "oracle_harmful_ratio_harmful" in history[0] or "oracle_helpfulness_benign" in history[0]
    samples = [json.loads(line) for line in (run_dir / "samples_train.jsonl").open()]
    assert len(samples) == 2 * 4 * 2
    assert results["test"]["num_responses"] == 8 and results["init"]["num_responses"] == 8
    assert results["train"]["steps"] == 2
    summary = (run_dir / "summary.md").read_text()
    assert "harmful ratio" in summary and "training_curves.png" in summary
    assert json.loads((run_dir / "results.json").read_text())["schedule"] == results["schedule"]


def test_bad_schedule_option_and_missing_models_name_the_key(
    model_folders, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        ["stage=ppo_lag", "debug=fast", "lambda_schedule=learned", "+lambda_schedule.lrr=1"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match="lambda_schedule"):
        run_stage(cfg)
    cfg = compose_run_config(
        ["stage=ppo_lag", "debug=fast", f"stage.actor_init={tmp_path / 'nowhere'}"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"stage\.actor_init"):
        run_stage(cfg)


def test_shared_critic_gives_both_values_from_one_backbone_pass(small_tokenizer):
    critic = score_model(small_tokenizer, "critic", seed=3)
    shared = critic.with_extra_head()
    assert shared.model is critic.model  # the backbone is shared, not copied
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    mask = torch.ones_like(ids, dtype=torch.bool)
    one, two = critic(ids, mask).scores, shared(ids, mask).scores
    torch.testing.assert_close(two[..., 0], one[..., 0])  # 2-row vs 1-row matmul: last bits
    assert torch.equal(two[..., 1], torch.zeros(1, 5))
    calls = []
    shared.model.register_forward_hook(lambda *args: calls.append(1))
    module = make_module(small_tokenizer, LearnedLambda(cost_limit=-10.0))
    module.reward_critic, module.cost_critic = shared, None
    module.shared_critic = True
    reward_values, cost_values = module.values(ids, mask, prompt_length=2)
    assert len(calls) == 1
    torch.testing.assert_close(reward_values, one[:, 1:-1, 0])
    (cost_values,) = cost_values  # the one cost stream
    assert cost_values.shape == (1, 3)


def test_ppo_steps_with_a_shared_critic_train_both_heads(small_tokenizer, benchmark_dir):
    schedule = LearnedLambda(cost_limit=-10.0, lr=0.5)
    module = make_module(small_tokenizer, schedule, max_steps=2)
    shared = module.reward_critic.with_extra_head()
    module = PPOLagModule(
        module.actor,
        module.reference,
        module.reward_model,
        module.cost_model,
        shared,
        None,
        schedule,
        ppo_config(max_steps=2),
        eos_token_id=small_tokenizer.eos_token_id,
        pad_token_id=small_tokenizer.pad_token_id,
    )
    assert module.shared_critic and "cost_critic" not in module.named_trained_models()
    head = shared.score_head.weight.detach().clone()
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    quick_trainer(max_steps=100).fit(module, train_dataloaders=prompts.train_dataloader())
    assert module.ppo_step == 2
    assert {"reward_critic_loss", "cost_critic_loss", "cost_critic_explained_variance"} <= set(
        module.history[-1]
    )
    moved = (shared.score_head.weight.detach() - head).abs().sum(dim=1)
    assert bool((moved > 0).all())  # both the V_R and the V_C head learned


@pytest.mark.parametrize("from_generation", [True, False])
def test_old_logprobs_from_sampling_equal_a_forward_pass_up_to_rounding(
    small_tokenizer, from_generation
):
    module = make_module(
        small_tokenizer, LearnedLambda(cost_limit=-10.0), logprobs_from_generation=from_generation
    )
    encoded = small_tokenizer(
        ["hello there", "a"], padding=True, padding_side="left", return_tensors="pt"
    )
    prompts = PromptBatch(encoded["input_ids"], encoded["attention_mask"].bool())
    rollout = module.make_rollout(prompts)
    with torch.no_grad():
        forward = response_logprobs(
            module.actor, rollout.input_ids, rollout.attention_mask, rollout.prompt_length
        )
    valid = rollout.response_mask
    torch.testing.assert_close(rollout.logprobs[valid], forward[valid], atol=1e-5, rtol=1e-5)
    if not from_generation:  # the separate pass is the same computation as this one
        assert torch.equal(rollout.logprobs[valid], forward[valid])
    assert {"generation_seconds", "scoring_seconds"} <= set(module.timings)


def test_the_rounding_only_speed_options_are_the_defaults():
    config = PPOLagStageConfig()
    assert config.logprobs_from_generation and config.fused_optimizer
    assert not config.shared_critic  # changes the method: an option only


def test_a_reward_model_given_as_the_cost_model_names_the_key(
    model_folders, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'reward'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"'stage\.cost_model'.*holds a reward model"):
        run_stage(cfg)
