"""SFT: a smoke run of the LightningModule, and the whole stage through the CLI's runner."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import SFTStageConfig
from safe_rlhf_lightning.data import SupervisedDataModule
from safe_rlhf_lightning.models import build_tiny_causal_lm
from safe_rlhf_lightning.stages import SFTModule
from tests.conftest import TINY_TEST_MODEL, compose_run_config, quick_trainer


def test_sft_module_two_steps_moves_every_trained_parameter(small_tokenizer, benchmark_dir):
    model = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    datamodule = SupervisedDataModule(
        small_tokenizer,
        ["benchmark-sft/train"],
        ["benchmark-sft/test:0.1"],
        data_root=benchmark_dir,
        batch_size=8,
    )
    trainer = quick_trainer()
    config = SFTStageConfig(lr=1e-2, lr_warmup_ratio=0.0, lr_scheduler="constant")
    module = SFTModule(model, config)
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, benchmark_dir):
    tmp_path = tmp_path_factory.mktemp("sft")
    cfg = compose_run_config(
        [
            "debug=fast",
            "stage.eval_limit=12",
            *TINY_TEST_MODEL,
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    return cfg, tmp_path / "run", results


def test_sft_run_writes_a_reloadable_hf_model_folder(sft_run, small_tokenizer):
    _, run_dir, _ = sft_run
    folder = run_dir / "model"
    assert (folder / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token is not None and tokenizer.eos_token is not None
    assert not any(p.name.endswith((".tmp", ".old")) for p in run_dir.iterdir())


def test_sft_run_logs_losses_and_oracle_metrics(sft_run):
    _, run_dir, results = sft_run
    saved = json.loads((run_dir / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for split in ("init", "test"):
        assert saved[split]["num_responses"] == 12
        unsafe = saved[split]["harmful_ratio"] * 12  # a share of the 12 responses
        assert unsafe == pytest.approx(round(unsafe))
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    assert saved["test"]["harmful_ratio"] == sum(not r["is_safe"] for r in rows) / len(rows)
    assert (run_dir / "config.yaml").exists()
    summary = (run_dir / "summary.md").read_text()
    assert "| harmful ratio (harmful prompts) ↓ |" in summary and "untrained" in summary
    (metrics_file,) = (run_dir / "logs").glob("version_*/metrics.csv")
    with metrics_file.open() as handle:
        rows = list(csv.DictReader(handle))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"train/loss", "val/loss", "test/helpfulness", "init/helpfulness"} <= logged
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    assert len(samples) == 12
    assert {"prompt", "response", "helpfulness", "cost", "is_safe"} <= set(samples[0])


def test_sft_run_resumes_from_its_last_checkpoint(sft_run, caplog):
    cfg, run_dir, _ = sft_run
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    with caplog.at_level("INFO"):
        run_stage(cfg)
    assert any("resuming from" in message for message in caplog.messages)
    # The first launch's logs are still there next to the resumed launch's.
    assert len(list((run_dir / "logs").glob("version_*/metrics.csv"))) == 2
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
