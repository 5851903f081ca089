"""The ``advantage`` group in the PPO-Lagrangian stage: GRPO, Dr. GRPO and RLOO without critics,
beside GAE. (The pure functions are tested in tests/functional.)"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.config import ConfigError, GAEAdvantage, GRPOAdvantage, RLOOAdvantage
from safe_rlhf_lightning.data import PromptDataModule
from safe_rlhf_lightning.functional import (
    grpo_advantages,
    kl_penalized_scores,
    mix_advantages,
    rloo_advantages,
    token_advantages,
)
from safe_rlhf_lightning.lagrange import FixedLambda, LearnedLambda, NoLambda, PIDLambda
from safe_rlhf_lightning.rollout import Rollout
from safe_rlhf_lightning.stages import PPOLagModule, updates_per_rollout
from safe_rlhf_lightning.stages.ppo_lag_advantages import estimate, group_ids
from safe_rlhf_lightning.stages.ppo_lag_constraints import Constraint
from tests.conftest import compose_run_config, quick_trainer
from tests.ppo_faults import inject_nonfinite
from tests.stages.test_ppo_stage import ppo_config, score_model, tiny_lm

ESTIMATORS = {
    "grpo": GRPOAdvantage(),
    "dr_grpo": GRPOAdvantage(scale_by_std=False, aggregation="budget"),
    "rloo": RLOOAdvantage(),
}


def critic_free_module(tokenizer, schedule, advantage, **fields):
    actor = tiny_lm(tokenizer, seed=0)
    return PPOLagModule(
        actor,
        copy.deepcopy(actor),
        score_model(tokenizer, "reward", seed=1),
        score_model(tokenizer, "cost", seed=2),
        None,
        None,
        schedule,
        ppo_config(**fields),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        advantage=advantage,
    )


@pytest.mark.parametrize(
    ("name", "schedule"),
    [
        ("grpo", lambda: LearnedLambda(cost_limit=-10.0, init=1.0, lr=0.5)),
        ("dr_grpo", lambda: PIDLambda(cost_limit=-10.0)),
        ("rloo", lambda: LearnedLambda(cost_limit=-10.0, init=1.0, lr=0.5)),
        ("rloo", lambda: FixedLambda(nu=2.0)),
    ],
)
def test_two_critic_free_steps_train_the_actor_only(name, schedule, small_tokenizer, benchmark_dir):
    schedule = schedule()
    module = critic_free_module(small_tokenizer, schedule, ESTIMATORS[name], max_steps=2)
    assert module.reward_critic is None and module.cost_critic is None
    assert list(module.named_trained_models()) == ["actor"]
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    updates = updates_per_rollout(4 * 2, 2, 4)
    trainer = quick_trainer(max_steps=10 * updates)
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())

    assert module.ppo_step == 2 and trainer.global_step == 2 * updates
    metrics = trainer.callback_metrics
    for key in ("reward", "cost", "lambda", "actor_loss", "approx_kl", "reward_with_kl_penalty"):
        assert torch.isfinite(metrics[f"train/{key}"]), key
    assert not any("critic" in key for key in metrics)
    assert ("train/kl" in metrics) == (ESTIMATORS[name].kl_penalty == "loss")  # the k3 term
    for parameter_name, parameter in module.named_parameters():
        changed = not torch.equal(parameter, before[parameter_name])
        owner = parameter_name.split(".")[0]
        assert changed == (owner == "actor"), parameter_name
    assert not module.reference.training and not module.cost_model.training
    if isinstance(schedule, LearnedLambda | PIDLambda):  # cost far above the limit: λ rose
        assert schedule.lambda_value > 1.0


def _rollout(groups: int = 3, k: int = 4, length: int = 5, seed: int = 0) -> Rollout:
    """A hand-made rollout: ragged responses, random log-probs and scores, one tied group."""
    generator = torch.Generator().manual_seed(seed)
    size = groups * k
    lengths = torch.randint(1, length + 1, (size,), generator=generator)
    mask = torch.arange(length) < lengths.unsqueeze(-1)
    reward = torch.randn(size, generator=generator)
    reward[:k] = 0.7  # the first prompt's responses all score the same
    return Rollout(
        input_ids=torch.zeros(size, 2 + length, dtype=torch.long),
        attention_mask=torch.ones(size, 2 + length, dtype=torch.bool),
        response_mask=mask,
        logprobs=-torch.rand(size, length, generator=generator),
        ref_logprobs=-torch.rand(size, length, generator=generator),
        reward=reward,
        cost=torch.randn(1, size, generator=generator),  # one constraint
        reward_values=None,
        cost_values=None,
    )


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("schedule", ["none", "pid_at_zero", "fixed_at_zero"])
def test_lambda_zero_is_plain_grpo_or_rloo_on_the_reward(name, schedule):
    estimator, rollout = ESTIMATORS[name], _rollout()
    config = ppo_config(num_return_sequences=4, kl_coef=0.1)
    schedule = {
        "none": NoLambda(),
        "pid_at_zero": PIDLambda(cost_limit=0.0, init=0.0),  # two streams, λ = 0
        "fixed_at_zero": FixedLambda(nu=0.0),
    }[schedule]
    targets = estimate(estimator, rollout, [Constraint("cost", schedule)], config)

    groups = torch.arange(3).repeat_interleave(4)
    kl_weight = -0.1 if estimator.kl_penalty == "reward" else 0.0
    score = kl_penalized_scores(
        rollout.reward,
        rollout.logprobs,
        rollout.ref_logprobs,
        rollout.response_mask,
        kl_weight=kl_weight,
    )
    if name == "rloo":
        expected = rloo_advantages(score, groups)
    else:
        expected = grpo_advantages(score, groups, scale_by_std=estimator.scale_by_std)
    expected = token_advantages(expected, rollout.response_mask)
    torch.testing.assert_close(targets["advantages"], expected, rtol=0, atol=1e-6)
    if kl_weight == 0:  # the tied group: advantage exactly 0, no NaN
        assert torch.equal(targets["advantages"][:4], torch.zeros(4, 5))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_two_streams_are_mixed_with_lambda_as_with_gae(name):
    estimator, rollout = ESTIMATORS[name], _rollout(seed=1)
    config = ppo_config(num_return_sequences=4, kl_coef=0.1)
    schedule = PIDLambda(cost_limit=0.0, init=2.0)
    targets = estimate(estimator, rollout, [Constraint("cost", schedule)], config)

    groups, mask = torch.arange(3).repeat_interleave(4), rollout.response_mask
    kl_coef = 0.1 if estimator.kl_penalty == "reward" else 0.0

    def stream(score, sign):
        score = kl_penalized_scores(
            score, rollout.logprobs, rollout.ref_logprobs, mask, kl_weight=sign * kl_coef
        )
        if name == "rloo":
            return token_advantages(rloo_advantages(score, groups), mask)
        scale = estimator.scale_by_std
        return token_advantages(grpo_advantages(score, groups, scale_by_std=scale), mask)

    expected = mix_advantages(stream(rollout.reward, -1), stream(rollout.cost[0], 1), 2.0)
    torch.testing.assert_close(targets["advantages"], expected, rtol=0, atol=1e-6)


def test_group_ids_follow_the_sampling_order():
    assert group_ids(6, 3).tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="not groups of 4"):
        group_ids(6, 4)


def test_critics_must_match_the_estimator(small_tokenizer):
    module = critic_free_module(small_tokenizer, NoLambda(), RLOOAdvantage())
    critic = score_model(small_tokenizer, "critic", seed=3)
    with pytest.raises(ValueError, match="rloo advantage estimator takes critics: False"):
        PPOLagModule(
            *(module.actor, module.reference, module.reward_model, module.cost_model),
            critic,
            None,
            NoLambda(),
            ppo_config(),
            eos_token_id=0,
            pad_token_id=0,
            advantage=RLOOAdvantage(),
        )
    with pytest.raises(ValueError, match="gae advantage estimator takes critics: True"):
        PPOLagModule(
            *(module.actor, module.reference, module.reward_model, module.cost_model),
            None,
            None,
            NoLambda(),
            ppo_config(),
            eos_token_id=0,
            pad_token_id=0,
            advantage=GAEAdvantage(),
        )


def test_a_checkpoint_of_another_estimator_is_refused(small_tokenizer, benchmark_dir, tmp_path):
    schedule = LearnedLambda(cost_limit=-10.0, lr=0.5)
    module = critic_free_module(small_tokenizer, schedule, GRPOAdvantage(), max_steps=1)
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = quick_trainer(max_steps=100, default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())
    trainer.save_checkpoint(tmp_path / "grpo.ckpt")
    checkpoint = torch.load(tmp_path / "grpo.ckpt", weights_only=False)
    assert checkpoint["advantage_estimator"] == "grpo"
    assert all(k.startswith("actor.") for k in checkpoint["state_dict"])  # no critic weights
    fresh = critic_free_module(
        small_tokenizer, LearnedLambda(cost_limit=-10.0, lr=0.5), GRPOAdvantage()
    )
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.ppo_step == 1
    other = critic_free_module(small_tokenizer, LearnedLambda(cost_limit=0.0), RLOOAdvantage())
    with pytest.raises(ValueError, match="grpo advantage estimator, this run uses rloo"):
        other.on_load_checkpoint(checkpoint)


@pytest.mark.parametrize("schedule", ["learned", "pid"])
@pytest.mark.parametrize("advantage", ["gae", "grpo", "dr_grpo", "rloo"])
def test_each_estimator_composes_with_the_schedules_and_runs(
    advantage, schedule, model_folders, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            f"advantage={advantage}",
            f"lambda_schedule={schedule}",
            "cost_threshold=zero",
            "stage.max_steps=2",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.eval_max_new_tokens=8",
            "stage.eval_limit=4",
            "stage.save_critics=true",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    assert results["advantage"] == advantage and results["train"]["steps"] == 2
    assert (run_dir / "model" / "config.json").is_file()
    critics = advantage == "gae"
    assert (run_dir / "reward_critic").exists() == critics  # save_critics: only if there are any
    assert (run_dir / "cost_critic").exists() == critics
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert all(("reward_critic_loss" in row) == critics for row in history)


def test_a_bad_estimator_option_names_the_key(model_folders, tmp_path, benchmark_dir):
    base = ["stage=ppo_lag", f"stage.actor_init={model_folders / 'sft'}"]
    cfg = compose_run_config([*base, "advantage=grpo", "advantage.kl_penalty=both"], tmp_path)
    with pytest.raises(ConfigError, match=r"advantage\.kl_penalty"):
        run_stage(cfg)


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_nonfinite_rollouts_and_losses_are_skipped_as_with_gae(
    name, small_tokenizer, benchmark_dir, monkeypatch
):
    inject_nonfinite(monkeypatch.setattr, minibatch_steps=(2,), cost_steps=(1,))
    schedule = LearnedLambda(cost_limit=-10.0, init=1.0, lr=0.5)
    module = critic_free_module(
        small_tokenizer, schedule, ESTIMATORS[name], max_steps=3, skip_nonfinite=True
    )
    prompts = PromptDataModule(
        small_tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = quick_trainer(max_steps=100)
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())

    assert module.ppo_step == 3
    assert [row["step"] for row in module.history] == [0.0, 2.0]  # step 1's rollout skipped
    assert module.guard.skipped == 2  # that rollout and one minibatch of step 2
    # The NaN costs never reached λ: steps 0 and 2 only (4 and 3 prompts × 2 responses).
    assert len(schedule.episode_costs) == 8 + 6
    assert all(math.isfinite(c) for c in schedule.episode_costs)
    assert all(torch.isfinite(p).all() for p in module.actor.parameters())


def test_critic_settings_are_refused_only_where_no_critic_reads_them(tmp_path):
    """GAE reads every critic option; a critic-free estimator refuses the ones it would ignore,
    but keeps save_critics (it saves the critics where there are any)."""
    critic_options = ["stage.gamma=0.9", "stage.critic_lr=3e-4", "stage.save_critics=true"]
    validate_config(
        compose_run_config(["stage=ppo_lag", "advantage=gae", *critic_options], tmp_path)
    )
    validate_config(
        compose_run_config(["stage=ppo_lag", "advantage=grpo", critic_options[2]], tmp_path)
    )
    with pytest.raises(
        ConfigError, match=r"stage\.gamma, stage\.critic_lr set, but advantage=rloo"
    ):
        validate_config(
            compose_run_config(["stage=ppo_lag", "advantage=rloo", *critic_options], tmp_path)
        )
