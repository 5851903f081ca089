"""Reward and cost stages: module smoke runs and the whole stage through the CLI's runner."""

from __future__ import annotations

import json

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError, PreferenceStageConfig
from safe_rlhf_lightning.data import PreferenceDataModule
from safe_rlhf_lightning.models import ScoreModel, build_tiny_causal_lm
from safe_rlhf_lightning.stages import CostModule, RewardModule
from tests.conftest import TINY_TEST_MODEL, compose_run_config, quick_trainer


@pytest.mark.parametrize(("module_class", "safety"), [(RewardModule, False), (CostModule, True)])
@pytest.mark.parametrize("loss_type", ["sequence-wise", "token-wise"])
def test_two_steps_move_every_parameter(
    module_class, safety, loss_type, small_tokenizer, benchmark_dir
):
    backbone = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    )
    model = ScoreModel(backbone, score_type="cost" if safety else "reward")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    datamodule = PreferenceDataModule(
        small_tokenizer,
        ["benchmark-preference/train:0.05"],
        ["benchmark-preference/test:0.05"],
        safety=safety,
        data_root=benchmark_dir,
        batch_size=8,
    )
    # Validate at step 2, before the epoch ends.
    trainer = quick_trainer(limit_val_batches=2, val_check_interval=2)
    name = "cost" if safety else "reward"
    config = PreferenceStageConfig(name=name, loss_type=loss_type, lr=1e-2, lr_warmup_ratio=0.0)
    module = module_class(model, config)
    trainer.fit(module, datamodule=datamodule)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    expected = {"val/accuracy", "val/cost_mean" if safety else "val/reward_mean"}
    assert expected <= set(metrics)
    if safety:
        assert "val/accuracy_sign" in metrics
    # The LM head was dropped; every parameter of backbone and score head was trained.
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []


@pytest.fixture(scope="module")
def sft_folder(tmp_path_factory, benchmark_dir):
    tmp_path = tmp_path_factory.mktemp("sft_for_preference")
    cfg = compose_run_config(
        ["debug=fast", "stage.eval_limit=0", *TINY_TEST_MODEL], tmp_path, benchmark_dir
    )
    run_stage(cfg)
    return tmp_path / "run" / "model"


@pytest.mark.parametrize("stage", ["reward", "cost"])
@pytest.mark.slow
def test_stage_run_writes_model_scores_histogram_and_metrics(
    stage, sft_folder, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        [
            f"stage={stage}",
            "debug=fast",
            f"stage.init_from={sft_folder}",
            "stage.eval_limit=100",
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    run_dir = tmp_path / "run"
    test = results["test"]
    assert test["num_pairs"] == 100
    assert 0.0 <= test["accuracy"] <= 1.0 and 0.5 < test["ceiling_accuracy"] < 1.0
    if stage == "cost":
        assert {"accuracy_sign", "ceiling_accuracy_sign", "oracle_sign_agreement"} <= set(test)
    assert (run_dir / f"{stage}_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run_dir / "results.json").read_text())["test"] == test

    # The saved folder reloads as a score model and reproduces the written scores.
    model = ScoreModel.from_pretrained(run_dir / "model")
    assert model.score_type == stage
    rows = [json.loads(line) for line in (run_dir / "scores.jsonl").open()]
    assert len(rows) == 100
    from safe_rlhf_lightning.data import PromptTemplate, load_records
    from safe_rlhf_lightning.evaluation import score_preference_records
    from safe_rlhf_lightning.models import load_tokenizer

    records = load_records(["benchmark-preference/test"], "preference", data_root=benchmark_dir)[:5]
    again = score_preference_records(
        model, load_tokenizer(str(run_dir / "model")), records, PromptTemplate()
    )
    for first, second in zip(rows[:5], again, strict=True):
        assert first["score_0"] == pytest.approx(second["score_0"], abs=1e-5)
        assert first["score_1"] == pytest.approx(second["score_1"], abs=1e-5)


def test_missing_init_folder_names_the_key(tmp_path, benchmark_dir):
    cfg = compose_run_config(
        ["stage=reward", "debug=fast", f"stage.init_from={tmp_path / 'nowhere'}"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"stage\.init_from"):
        run_stage(cfg)
