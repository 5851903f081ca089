"""The dpo stage: the per-sequence log-probs it trains on, a two-step smoke run per loss, the
frozen reference, resume, bad data on the safer axis, and the whole stage through the runner."""

from __future__ import annotations

import json

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError, DPOStageConfig
from safe_rlhf_lightning.data import PreferenceDataModule, RecordError
from safe_rlhf_lightning.functional import dpo_loss, sequence_logprobs
from safe_rlhf_lightning.models import build_tiny_causal_lm
from safe_rlhf_lightning.stages import DPOModule
from safe_rlhf_lightning.stages.dpo import pair_logprobs
from tests.conftest import TINY_TEST_MODEL, compose_run_config, quick_trainer

SIZE = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


def test_sequence_logprobs_sums_the_masked_tokens_in_float64():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=generator)
    ids = torch.randint(0, 7, (3, 5), generator=generator)
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool)
    expected = torch.zeros(3, dtype=torch.float64)
    logp = logits.double().log_softmax(-1)
    for b in range(3):
        for t in range(1, 5):  # token t is predicted by position t - 1
            if mask[b, t]:
                expected[b] += logp[b, t - 1, ids[b, t]]
    torch.testing.assert_close(sequence_logprobs(logits, ids, mask).double(), expected)


def _datamodule(tokenizer, benchmark_dir, safety=False):
    datamodule = PreferenceDataModule(
        tokenizer,
        ["benchmark-preference/train:0.01"],
        ["benchmark-preference/test:0.02"],
        safety=safety,
        data_root=benchmark_dir,
        batch_size=4,
        max_length=96,
    )
    datamodule.setup("fit")
    return datamodule


def test_pair_logprobs_give_the_margin_of_whole_response_sums(small_tokenizer, benchmark_dir):
    """Summing from the first differing token (no prompt boundary in the batch) loses nothing:
    the DPO loss and margin equal those of sums over whole sequences (the shared prompt
    cancels), while the sums themselves differ."""
    torch.manual_seed(0)
    policy = build_tiny_causal_lm(small_tokenizer, seed=0, **SIZE)
    reference = build_tiny_causal_lm(small_tokenizer, seed=1, **SIZE)
    dm = _datamodule(small_tokenizer, benchmark_dir)
    batch = next(iter(dm.train_dataloader()))
    pair = (batch.better_input_ids, batch.better_attention_mask)
    pair += (batch.worse_input_ids, batch.worse_attention_mask)
    with torch.no_grad():
        ours = [*pair_logprobs(policy, *pair), *pair_logprobs(reference, *pair)]
        whole = []  # sums over every token of each sequence (prompt included)
        for model in (policy, reference):
            for ids, mask in ((pair[0], pair[1]), (pair[2], pair[3])):
                logits = model(input_ids=ids, attention_mask=mask).logits
                whole.append(sequence_logprobs(logits, ids, mask))
    loss, stats = dpo_loss(*ours, beta=0.1)
    whole_loss, whole_stats = dpo_loss(*whole, beta=0.1)
    torch.testing.assert_close(loss, whole_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats["reward_margin"], whole_stats["reward_margin"])
    assert not torch.allclose(ours[0], whole[0])


def _two_step_run(tokenizer, benchmark_dir, config, trainer=None, ckpt_path=None):
    policy = build_tiny_causal_lm(tokenizer, seed=0, **SIZE)
    reference = build_tiny_causal_lm(tokenizer, seed=0, **SIZE)
    module = DPOModule(policy, reference, config)
    trainer = trainer or quick_trainer()
    trainer.fit(
        module,
        datamodule=_datamodule(tokenizer, benchmark_dir, config.axis == "safer"),
        ckpt_path=ckpt_path,
        weights_only=True,
    )
    return module, trainer


def _config(**overrides) -> DPOStageConfig:
    settings = {"lr": 1e-2, "lr_warmup_ratio": 0.0, "lr_scheduler": "constant"}
    return DPOStageConfig(**{**settings, **overrides})


@pytest.mark.parametrize(
    ("loss_type", "axis"),
    [("dpo", "better"), ("ipo", "better"), ("kto", "better"), ("dpo", "safer")],
)
def test_two_steps_move_the_policy_and_leave_the_reference(
    small_tokenizer, benchmark_dir, loss_type, axis
):
    start = build_tiny_causal_lm(small_tokenizer, seed=0, **SIZE).state_dict()
    config = _config(loss_type=loss_type, axis=axis, label_smoothing=0.1 * (loss_type == "dpo"))
    module, trainer = _two_step_run(small_tokenizer, benchmark_dir, config)
    assert trainer.global_step == 2
    train = dict(trainer.callback_metrics)
    (val,) = trainer.validate(
        module,
        datamodule=_datamodule(small_tokenizer, benchmark_dir, axis == "safer"),
        verbose=False,
    )
    for split, metrics in (("train", train), ("val", val)):
        for name in ("loss", "accuracy", "reward_margin", "chosen_reward", "rejected_reward"):
            assert torch.isfinite(torch.as_tensor(metrics[f"{split}/{name}"])), (split, name)
    unchanged = [n for n, p in module.model.named_parameters() if torch.equal(p, start[n])]
    assert unchanged == []
    reference = module.reference.state_dict()
    assert all(torch.equal(reference[n], start[n]) for n in start)
    assert not module.reference.training
    assert not any(p.requires_grad for p in module.reference.parameters())


def test_resume_from_step_two_equals_four_straight_steps(small_tokenizer, benchmark_dir, tmp_path):
    config = _config()
    straight, _ = _two_step_run(small_tokenizer, benchmark_dir, config, quick_trainer(max_steps=4))
    _, first = _two_step_run(small_tokenizer, benchmark_dir, config)
    path = tmp_path / "step2.ckpt"
    first.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    assert saved["state_dict"] and not any(k.startswith("reference.") for k in saved["state_dict"])
    resumed, trainer = _two_step_run(
        small_tokenizer, benchmark_dir, config, quick_trainer(max_steps=4), ckpt_path=path
    )
    assert trainer.global_step == 4
    expected = straight.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0)


def _write_unlabelled_pairs(path):
    rows = [
        {
            "prompt": f"How do I bake bread number {i}?",
            "response_0": "Mix flour and water.",
            "response_1": "I cannot help.",
            "better_response_id": 0,
            "safer_response_id": None,
            "is_response_0_safe": None,
            "is_response_1_safe": None,
        }
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_safer_axis_on_pairs_without_safety_labels_is_refused_naming_them(tmp_path, model_folders):
    data = tmp_path / "pairs.jsonl"
    _write_unlabelled_pairs(data)
    overrides = [
        "stage=dpo",
        "data=local",
        f"data.preference_train=[{data}]",
        f"stage.init_from={model_folders / 'sft'}",
    ]
    with pytest.raises(RecordError, match=r"no safety labels.*stage\.axis=safer"):
        run_stage(compose_run_config([*overrides, "stage.axis=safer"], tmp_path))
    assert not (tmp_path / "run" / "model").exists()


def test_safer_axis_on_a_registered_unlabelled_dataset_names_the_keys(tmp_path):
    cfg = compose_run_config(["stage=dpo", "data=hh_rlhf", "stage.axis=safer"], tmp_path)
    with pytest.raises(ConfigError, match=r"'stage\.axis' is safer.*'data\.preference_train'"):
        run_stage(cfg)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stage.loss_type=sigmoid", "stage.loss_type"),
        ("stage.axis=helpful", "stage.axis"),
        ("stage.beta=0", "stage.beta"),
        ("stage.label_smoothing=0.5", "stage.label_smoothing"),
    ],
)
def test_bad_dpo_settings_name_their_key(tmp_path, override, key):
    from safe_rlhf_lightning.cli.runner import validate_config

    with pytest.raises(ConfigError, match=key):
        validate_config(compose_run_config(["stage=dpo", override], tmp_path))


@pytest.mark.slow
def test_dpo_stage_runs_with_debug_fast(tmp_path, benchmark_dir, model_folders):
    cfg = compose_run_config(
        [
            "stage=dpo",
            "debug=fast",
            "stage.eval_limit=4",
            "stage.batch_size=4",
            "stage.evaluate_before_training=true",
            f"stage.init_from={model_folders / 'sft'}",
            *TINY_TEST_MODEL,
        ],
        tmp_path,
        benchmark_dir,
    )
    assert cfg.stage.reference_init == cfg.stage.init_from
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / "model" / "model.safetensors").exists()
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved["axis"] == "better" and saved["loss_type"] == "dpo"
    assert saved["train"]["train/loss"] == pytest.approx(results["train"]["train/loss"])
    for split in ("init", "test"):
        assert saved[split]["num_responses"] == 4
    assert "val/reward_margin" in saved["val"]
    kl = saved["test"]["kl_to_reference"]  # the policy moved: log-ratios are no longer 0
    assert kl != 0.0 and abs(kl) < 10
    assert "dpo (better)" in (run_dir / "summary.md").read_text()


def test_sacpo_safety_preset_starts_from_the_helpfulness_step(tmp_path):
    from safe_rlhf_lightning.cli.runner import validate_config

    typed = validate_config(compose_run_config(["stage=sacpo_safety"], tmp_path))
    stage = typed.stage
    assert isinstance(stage, DPOStageConfig) and stage.axis == "safer"
    assert stage.init_from.endswith("round1/sacpo_helpful/model")
    assert stage.reference_init == stage.init_from
    assert stage.beta < DPOStageConfig().beta  # its own β, the paper's β/λ


def test_make_sacpo_eval_policies_compose(tmp_path):
    from safe_rlhf_lightning.cli.runner import validate_config

    names = "{sft: a/sft, safe_rlhf: a/ppo, sacpo_helpful: a/h, sacpo: a/s, p_sacpo: a/p}"
    typed = validate_config(compose_run_config(["stage=eval", f"stage.policies={names}"], tmp_path))
    assert list(typed.stage.policies) == ["sft", "safe_rlhf", "sacpo_helpful", "sacpo", "p_sacpo"]
