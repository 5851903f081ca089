"""The cdpo stage: two iterations move the policy and nothing else, λ follows the samples' cost
against the limit, pairs are labelled by R - λ·C, resume equals a straight run, bad settings
name their key, and the whole stage through the runner."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.config import CDPOStageConfig, ConfigError
from safe_rlhf_lightning.data import PromptDataModule
from safe_rlhf_lightning.lagrange import FixedLambda, LearnedLambda, NoLambda, PIDLambda
from safe_rlhf_lightning.models import ScoreModel, build_tiny_causal_lm
from safe_rlhf_lightning.stages import CDPOModule
from tests.conftest import TEST_MODEL_SIZE, compose_run_config, quick_trainer


def _config(**fields) -> CDPOStageConfig:
    settings = {
        "max_new_tokens": 8,
        "num_return_sequences": 3,
        "update_epochs": 2,
        "lr": 1e-2,
        "max_steps": 2,
        **fields,
    }
    return CDPOStageConfig(**settings)


def _module(tokenizer, schedule, **fields) -> CDPOModule:
    policy = build_tiny_causal_lm(tokenizer, seed=0, **TEST_MODEL_SIZE)
    scores = []
    for seed, kind in ((1, "reward"), (2, "cost")):
        torch.manual_seed(seed)
        backbone = build_tiny_causal_lm(tokenizer, seed=seed, **TEST_MODEL_SIZE)
        scores.append(ScoreModel(backbone, score_type=kind))
    return CDPOModule(
        policy,
        copy.deepcopy(policy),
        *scores,
        schedule,
        _config(**fields),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _fit(module, tokenizer, benchmark_dir, trainer=None, ckpt_path=None):
    prompts = PromptDataModule(
        tokenizer, ["benchmark-prompts/train:0.01"], [], data_root=benchmark_dir, batch_size=4
    )
    trainer = trainer or quick_trainer(max_steps=100)  # the module stops itself
    trainer.fit(
        module, train_dataloaders=prompts.train_dataloader(), ckpt_path=ckpt_path, weights_only=True
    )
    return trainer


def test_two_iterations_move_the_policy_and_leave_reference_r_and_c(small_tokenizer, benchmark_dir):
    module = _module(small_tokenizer, LearnedLambda(cost_limit=-10.0, lr=0.5))
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer = _fit(module, small_tokenizer, benchmark_dir)

    assert module.iteration == 2 and len(module.history) == 2
    assert trainer.global_step == 4  # update_epochs DPO steps per iteration
    for key in ("reward", "cost", "lambda", "loss", "reward_margin", "accuracy", "pairs"):
        assert torch.isfinite(trainer.callback_metrics[f"train/{key}"]), key
    assert 0 < module.history[0]["pairs"] <= 4  # at most one pair per prompt
    moved = [not torch.equal(p, before[f"policy.{n}"]) for n, p in module.policy.named_parameters()]
    assert all(moved), f"{moved.count(False)} policy parameters did not move"
    for name, parameter in module.named_parameters():
        if name.startswith(("reference.", "reward_model.", "cost_model.")):
            assert torch.equal(parameter, before[name]) and not parameter.requires_grad, name
    assert not module.reference.training and not module.cost_model.training
    assert module.cost_model.normalizer.count.item() == 0  # frozen C kept its statistics


@pytest.mark.parametrize(
    ("schedule", "limit", "rises"),
    [
        ("learned", -10.0, True),
        ("learned", 10.0, False),
        ("pid", -10.0, True),
        ("pid", 10.0, False),
    ],
)
def test_lambda_rises_above_the_cost_limit_and_falls_below(
    small_tokenizer, benchmark_dir, schedule, limit, rises
):
    build = {"learned": LearnedLambda, "pid": PIDLambda}[schedule]
    lam = build(cost_limit=limit, init=1.0)
    module = _module(small_tokenizer, lam, update_epochs=1)
    _fit(module, small_tokenizer, benchmark_dir)
    costs = [row["cost"] for row in module.history]
    assert all((c > limit) == rises for c in costs)  # the random C is far from both limits
    assert (lam.lambda_value > 1.0) == rises and lam.lambda_value != 1.0


def test_pairs_are_the_best_and_worst_under_r_minus_lambda_c(small_tokenizer):
    module = _module(small_tokenizer, FixedLambda(nu=2.0), num_return_sequences=3)
    ids = torch.arange(6 * 5).view(6, 5)
    mask = torch.ones(6, 5, dtype=torch.bool)
    response_mask = torch.ones(6, 3, dtype=torch.bool)
    reward = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    cost = torch.tensor([0.0, 0.0, 1.0, 1.0, -1.0, 0.0])
    # R - 2C: prompt 0: [1, 2, 1] -> best row 1, worst row 0; prompt 1: [-2, 2, 0] -> rows 4, 3.
    pairs = module.make_pairs(ids, mask, response_mask, reward, cost)
    assert pairs.input_ids[:, 0].tolist() == [5, 20, 0, 15]  # chosen rows 1, 4; rejected 0, 3
    torch.testing.assert_close(pairs.margin, torch.tensor([1.0, 4.0]))
    # No cost weight: prompt 1's rewards tie, so it gives no pair.
    module.schedule = NoLambda()
    pairs = module.make_pairs(ids, mask, response_mask, reward, cost)
    assert pairs.input_ids[:, 0].tolist() == [10, 0] and pairs.margin.tolist() == [2.0]


def test_resume_from_iteration_two_equals_four_straight_iterations(
    small_tokenizer, benchmark_dir, tmp_path
):
    def run(max_steps, ckpt_path=None):
        schedule = LearnedLambda(cost_limit=-10.0, lr=0.01)  # below its bound at every step
        module = _module(small_tokenizer, schedule, max_steps=max_steps)
        trainer = _fit(module, small_tokenizer, benchmark_dir, ckpt_path=ckpt_path)
        return module, trainer

    torch.manual_seed(7)
    straight, _ = run(4)
    torch.manual_seed(7)
    _, trainer = run(2)
    path = tmp_path / "iteration2.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)
    assert saved["ppo_step"] == 2 and saved["advantage_estimator"] == "cdpo"
    assert not any(k.startswith(("reference.", "cost_model.")) for k in saved["state_dict"])
    torch.manual_seed(123)  # the checkpoint's generators, not these, drive the resumed samples
    resumed, _ = run(4, ckpt_path=path)
    assert resumed.iteration == 4
    timeless = [
        [{k: v for k, v in row.items() if k != "seconds_per_step"} for row in m.history]
        for m in (resumed, straight)
    ]
    assert timeless[0] == timeless[1]
    assert resumed.schedule.lambda_value == straight.schedule.lambda_value
    expected = straight.policy.state_dict()
    for name, value in resumed.policy.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stage.num_return_sequences=1", "stage.num_return_sequences"),
        ("stage.tie_tolerance=-1", "stage.tie_tolerance"),
        ("stage.beta=0", "stage.beta"),
        ("stage.loss_type=sigmoid", "stage.loss_type"),
        ("stage.update_epochs=0", "stage.update_epochs"),
    ],
)
def test_bad_cdpo_settings_name_their_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key):
        validate_config(compose_run_config(["stage=cdpo", override], tmp_path))


def test_missing_cost_model_and_bad_schedule_name_the_key(model_folders, tmp_path, benchmark_dir):
    common = ["stage=cdpo", "debug=fast", f"stage.init_from={model_folders / 'sft'}"]
    cfg = compose_run_config(
        [*common, f"stage.reward_model={model_folders / 'reward'}", "stage.cost_model=nowhere"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"stage\.cost_model"):
        run_stage(cfg)
    cfg = compose_run_config([*common, "+lambda_schedule.lrr=1"], tmp_path, benchmark_dir)
    with pytest.raises(ConfigError, match="lambda_schedule"):
        run_stage(cfg)


@pytest.mark.slow
def test_cdpo_stage_run_writes_policy_history_and_summary(model_folders, tmp_path, benchmark_dir):
    cfg = compose_run_config(
        [
            "stage=cdpo",
            "debug=fast",
            "stage.max_steps=2",
            "stage.batch_size=4",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.eval_max_new_tokens=8",
            "stage.eval_limit=4",
            f"stage.init_from={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    typed = validate_config(cfg)
    assert typed.stage.reference_init == typed.stage.init_from
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    history = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    assert [row["step"] for row in history] == [0.0, 1.0]
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["schedule"] == "LearnedLambda" and saved["cost_limit"] == -2.25
    assert saved["test"]["num_responses"] == 4 and results["train"]["steps"] == 2
    assert "C-DPO (LearnedLambda)" in (run_dir / "summary.md").read_text()


def test_make_compare_families_eval_policies_compose(tmp_path):
    names = "{sft: a/sft, safe_rlhf: a/ppo, sacpo: a/s, p_sacpo: a/p, cdpo: a/c}"
    typed = validate_config(compose_run_config(["stage=eval", f"stage.policies={names}"], tmp_path))
    assert list(typed.stage.policies) == ["sft", "safe_rlhf", "sacpo", "p_sacpo", "cdpo"]
