"""Runner of the SFT stage: data → policy → fit → Hugging Face folder → oracle evaluation."""

from __future__ import annotations

import logging

from ..config import RunConfig
from ..data import SupervisedDataModule
from ..evaluation import oracle_table
from ..files import write_text_atomic
from ..models import SFT_DIALOGUE_TURNS, save_pretrained_atomic
from ..stages import SFTModule
from .data import datamodule_options
from .models import build_policy, prepare_trained_model
from .runner import (
    DataNeed,
    StageContext,
    TrainingJob,
    fit_and_report,
    validation_after_fit,
)

log = logging.getLogger(__name__)


def sft_data(run: RunConfig) -> list[DataNeed]:
    return [
        DataNeed("data.sft_train", run.data.sft_train, "supervised", required=True),
        DataNeed("data.sft_eval", run.data.sft_eval, "supervised"),
    ]


def run_sft(ctx: StageContext) -> dict:
    data = ctx.data
    model, tokenizer = build_policy(ctx.run.model, ctx.template)
    prepare_trained_model(model, ctx.run.model)  # LoRA, activation checkpointing
    datamodule = SupervisedDataModule(
        tokenizer, data.sft_train, data.sft_eval, **datamodule_options(ctx.run, ctx.template)
    )
    datamodule.setup("fit")  # tokenization problems fail here, before any evaluation or training
    # Saved in config.json: a chat then knows whether the model has seen multi-turn dialogues.
    setattr(model.config, SFT_DIALOGUE_TURNS, datamodule.train_dataset.dialogue_turns)
    module = SFTModule(model, ctx.stage)

    def report(trainer, results: dict) -> None:
        if "test" in results:
            _write_summary(ctx, results)

    job = TrainingJob(
        module,
        {"datamodule": datamodule},
        folders={"model": (model, lambda m, path: save_pretrained_atomic(m, tokenizer, path))},
        policy=(model, tokenizer),
        results={"num_parameters": model.num_parameters()},
        after_fit=validation_after_fit(module, datamodule) if data.sft_eval else None,
        report=report,
    )
    return fit_and_report(ctx, job)


def _write_summary(ctx: StageContext, results: dict) -> None:
    columns = {"untrained": results["init"]} if "init" in results else {}
    columns["SFT"] = results["test"]
    table = oracle_table(columns)
    text = f"# SFT: oracle evaluation on held-out benchmark prompts\n\n{table}"
    write_text_atomic(ctx.run_dir / "summary.md", text)
    log.info("oracle evaluation (%s):\n%s", ctx.run_dir / "summary.md", table)
