"""PPO-Lagrangian under several constraints: one λ schedule, scorer and cost critic each; one
constraint through the ``constraints`` path is today's run bit for bit; every multiplier is in
the checkpoint and comes back on resume."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import RLOOAdvantage
from safe_rlhf_lightning.data import PromptDataModule
from safe_rlhf_lightning.functional import (
    kl_penalized_scores,
    mix_constrained_advantages,
    rloo_advantages,
    token_advantages,
)
from safe_rlhf_lightning.lagrange import FixedLambda, LearnedLambda, NoLambda, PIDLambda
from safe_rlhf_lightning.stages import PPOLagModule
from safe_rlhf_lightning.stages.ppo_lag_advantages import estimate
from safe_rlhf_lightning.stages.ppo_lag_constraints import RULE_SCORERS, Constraint
from tests.conftest import compose_run_config, quick_trainer
from tests.stages.test_ppo_advantage import _rollout
from tests.stages.test_ppo_stage import make_module, ppo_config, score_model, tiny_lm

CRITICS = ("reward_critic", "cost_critic")


def _fit(module, tokenizer, benchmark_dir, seed=0):
    torch.manual_seed(seed)
    prompts = PromptDataModule(
        tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = quick_trainer(max_steps=100, default_root_dir=benchmark_dir.parent)
    trainer.fit(module, train_dataloaders=prompts.train_dataloader())
    return trainer


def _without_timings(history):
    def timing(key: str) -> bool:  # wall-clock figures differ between any two runs
        return key.endswith(("_seconds", "per_second")) or key == "seconds_per_step"

    return [{k: v for k, v in row.items() if not timing(k)} for row in history]


def _harm_and_length(tokenizer, harm, length, **fields):
    """Two constraints: the cost model's (``harm``) and the length rule's, with critics."""
    actor = tiny_lm(tokenizer, seed=0)
    return PPOLagModule(
        actor,
        copy.deepcopy(actor),
        score_model(tokenizer, "reward", seed=1),
        {"harm": score_model(tokenizer, "cost", seed=2)},
        score_model(tokenizer, "critic", seed=3),
        {
            "harm": score_model(tokenizer, "critic", 4),
            "length": score_model(tokenizer, "critic", 5),
        },
        None,
        ppo_config(**fields),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        constraints=[
            Constraint("harm", harm, -10.0),
            Constraint("length", length, 2.0, rule=RULE_SCORERS["length"]),
        ],
    )


def test_one_constraint_given_as_constraints_is_todays_module_bit_for_bit(
    small_tokenizer, benchmark_dir
):
    today = make_module(small_tokenizer, LearnedLambda(cost_limit=-10.0, lr=0.5), max_steps=2)
    copies = {
        name: copy.deepcopy(getattr(today, name))
        for name in ("actor", "reference", "reward_model", "cost_model", *CRITICS)
    }
    schedule = LearnedLambda(cost_limit=-10.0, lr=0.5)
    listed = PPOLagModule(
        copies["actor"],
        copies["reference"],
        copies["reward_model"],
        {"cost": copies["cost_model"]},
        copies["reward_critic"],
        {"cost": copies["cost_critic"]},
        None,
        today.config,
        eos_token_id=small_tokenizer.eos_token_id,
        pad_token_id=small_tokenizer.pad_token_id,
        constraints=[Constraint("cost", schedule, -10.0)],
    )
    _fit(today, small_tokenizer, benchmark_dir)
    _fit(listed, small_tokenizer, benchmark_dir)

    assert listed.ppo_step == today.ppo_step == 2
    weights, other = today.state_dict(), listed.state_dict()
    assert list(weights) == list(other)
    assert all(torch.equal(weights[k], other[k]) for k in weights)
    assert _without_timings(listed.history) == _without_timings(today.history)
    assert schedule.lambda_value == today.schedule.lambda_value > 1.0  # λ rose, identically


def test_two_constraints_get_a_multiplier_a_critic_and_their_own_logs_each(
    small_tokenizer, benchmark_dir
):
    harm, length = LearnedLambda(cost_limit=-10.0, lr=0.5), PIDLambda(cost_limit=2.0, ki=0.0)
    module = _harm_and_length(small_tokenizer, harm, length, max_steps=2)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    _fit(module, small_tokenizer, benchmark_dir)

    last = module.history[-1]
    for key in ("cost/harm", "cost/length", "lambda/harm", "lambda/length"):
        assert key in last, key
    assert last["lambda/harm"] == harm.lambda_value > 1.0  # far above its limit: λ rose
    assert last["lambda"] == harm.lambda_value + length.lambda_value
    # The length rule is the response length in tokens, the logged mean_generated_length.
    assert [row["cost/length"] for row in module.history] == [
        row["mean_generated_length"] for row in module.history
    ]
    assert length.lambda_value > 1.0  # responses longer than 2 tokens: the PID's P term rose
    for name in ("reward", "harm", "length"):
        assert f"{name}_critic_loss" in last and f"{name}_critic_explained_variance" in last
    for owner in ("actor", "reward_critic", "harm_critic", "length_critic"):
        moved = [
            not torch.equal(p, before[f"{owner}.{n}"])
            for n, p in getattr(module, owner).named_parameters()
        ]
        assert all(moved), owner
    assert all(
        torch.equal(p, before[f"harm_model.{n}"]) for n, p in module.harm_model.named_parameters()
    )
    assert set(module.named_trained_models()) == {
        "actor", "reward_critic", "harm_critic", "length_critic"
    }  # fmt: skip


def test_every_multiplier_is_checkpointed_and_restored(small_tokenizer, benchmark_dir, tmp_path):
    module = _harm_and_length(
        small_tokenizer,
        LearnedLambda(cost_limit=-10.0, lr=0.5),
        PIDLambda(cost_limit=2.0),
        max_steps=1,
    )
    trainer = _fit(module, small_tokenizer, benchmark_dir)
    trainer.save_checkpoint(tmp_path / "ppo.ckpt")
    checkpoint = torch.load(tmp_path / "ppo.ckpt", weights_only=False)
    assert list(checkpoint["lambda_schedules"]) == ["harm", "length"]
    assert not any(k.startswith("harm_model.") for k in checkpoint["state_dict"])
    assert any(k.startswith("length_critic.") for k in checkpoint["state_dict"])

    harm, length = LearnedLambda(cost_limit=-10.0, lr=0.5), PIDLambda(cost_limit=2.0)
    fresh = _harm_and_length(small_tokenizer, harm, length, max_steps=2)
    fresh.on_load_checkpoint(checkpoint)
    for constraint, restored in zip(module.constraints, (harm, length), strict=True):
        assert restored.lambda_value == constraint.schedule.lambda_value
        assert list(restored.episode_costs) == list(constraint.schedule.episode_costs)
    other = _harm_and_length(small_tokenizer, PIDLambda(cost_limit=0.0), PIDLambda(cost_limit=2.0))
    with pytest.raises(ValueError, match="LearnedLambda λ schedule of constraint harm"):
        other.on_load_checkpoint(checkpoint)
    today = make_module(small_tokenizer, LearnedLambda(cost_limit=-10.0))
    with pytest.raises(
        ValueError, match=r"constraints \['harm', 'length'\], this run has \['cost'\]"
    ):
        today.on_load_checkpoint(checkpoint)


def test_estimate_mixes_each_two_stream_constraint_and_shapes_with_the_fixed_one():
    """A fixed ν shapes the reward stream's score (R - ν·C_a); each two-stream constraint is a
    stream of its own, mixed with its λ: (A_R - λ_b·A_b - λ_c·A_c) / (1 + λ_b + λ_c)."""
    rollout = _rollout(seed=2)
    generator = torch.Generator().manual_seed(5)
    costs = torch.randn(3, rollout.reward.shape[0], generator=generator)
    rollout = rollout._replace(cost=costs)
    constraints = [
        Constraint("a", FixedLambda(nu=2.0)),
        Constraint("b", PIDLambda(cost_limit=0.0, init=1.5)),
        Constraint("c", LearnedLambda(cost_limit=0.0, init=0.25)),
    ]
    config = ppo_config(num_return_sequences=4, kl_coef=0.1)
    targets = estimate(RLOOAdvantage(), rollout, constraints, config)

    groups, mask = torch.arange(3).repeat_interleave(4), rollout.response_mask

    def stream(score, sign):
        score = kl_penalized_scores(
            score, rollout.logprobs, rollout.ref_logprobs, mask, kl_weight=sign * 0.1
        )
        return token_advantages(rloo_advantages(score, groups), mask)

    reward = stream(rollout.reward - 2.0 * costs[0], -1)
    expected = mix_constrained_advantages(
        reward, [stream(costs[1], 1), stream(costs[2], 1)], [1.5, 0.25]
    )
    torch.testing.assert_close(targets["advantages"], expected, rtol=0, atol=1e-6)
    # A 'none' constraint changes nothing: only logged.
    with_none = estimate(RLOOAdvantage(), rollout._replace(cost=torch.cat([costs, costs[:1]])),
                         [*constraints, Constraint("d", NoLambda())], config)  # fmt: skip
    assert torch.equal(with_none["advantages"], targets["advantages"])


def test_constraint_names_must_differ_and_not_be_reward(small_tokenizer):
    for names in (["harm", "harm"], ["reward"]):
        with pytest.raises(ValueError, match="distinct names other than 'reward'"):
            PPOLagModule(
                *(None, None, None, {}, None, {}, None, ppo_config()),
                eos_token_id=0,
                pad_token_id=0,
                advantage=RLOOAdvantage(),
                constraints=[Constraint(n, NoLambda()) for n in names],
            )


def _stage_overrides(model_folders, extra):
    return [
        "stage=ppo_lag",
        "debug=fast",
        "stage.max_steps=2",
        "stage.batch_size=4",
        "stage.num_return_sequences=2",
        "stage.max_new_tokens=8",
        "stage.minibatch_size=4",
        "stage.eval_max_new_tokens=8",
        "stage.log_samples_every=1",
        "stage.save_critics=true",
        f"stage.actor_init={model_folders / 'sft'}",
        f"stage.reward_model={model_folders / 'reward'}",
        f"stage.cost_model={model_folders / 'cost'}",
        *extra,
    ]


def _stage_outcome(run_dir):
    from safetensors.torch import load_file

    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    folders = sorted(p.name for p in run_dir.iterdir() if (p / "model.safetensors").is_file())
    weights = {name: load_file(run_dir / name / "model.safetensors") for name in folders}
    return _without_timings(history), weights


@pytest.mark.slow
def test_the_one_entry_constraints_group_runs_todays_stage_exactly(
    model_folders, tmp_path, benchmark_dir
):
    outcomes = {}
    for name, extra in (("today", []), ("listed", ["constraints=cost"])):
        cfg = compose_run_config(
            [*_stage_overrides(model_folders, extra), f"run_dir={tmp_path / name}"],
            tmp_path / f"{name}_root",
            benchmark_dir,
        )
        cfg.run_dir = str(tmp_path / name)
        run_stage(cfg)
        outcomes[name] = _stage_outcome(tmp_path / name)
    (history, weights), (listed_history, listed_weights) = outcomes["today"], outcomes["listed"]
    assert listed_history == history and len(history) == 2
    assert sorted(weights) == sorted(listed_weights) == ["cost_critic", "model", "reward_critic"]
    for folder, tensors in weights.items():
        assert all(torch.equal(t, listed_weights[folder][k]) for k, t in tensors.items()), folder


@pytest.mark.slow
def test_stage_with_harm_and_length_writes_each_constraint(model_folders, tmp_path, benchmark_dir):
    cfg = compose_run_config(
        _stage_overrides(model_folders, ["constraints=harm_and_length"]), tmp_path, benchmark_dir
    )
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    history, weights = _stage_outcome(run_dir)
    assert sorted(weights) == ["harm_critic", "length_critic", "model", "reward_critic"]
    assert {"lambda/harm", "lambda/length", "cost/harm", "cost/length"} <= set(history[-1])
    assert results["constraints"]["length"] == {
        "schedule": "PIDLambda",
        "limit": 24.0,
        "scorer": "length",
    }
    assert results["train"]["final_lambda/harm"] > 0
    samples = [json.loads(line) for line in (run_dir / "samples_train.jsonl").open()]
    assert {"cost/harm", "cost/length"} <= set(samples[0])
    assert "harm <= " in (run_dir / "summary.md").read_text()
    assert (run_dir / "constraint_curves.png").read_bytes()[:4] == b"\x89PNG"
    # The oracle's harmful ratio per harm category of the rollouts' harmful prompts.
    assert any(key.startswith("oracle_harmful_ratio/") for row in history for key in row)
