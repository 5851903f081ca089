"""Runner of the SFT stage: data → policy → fit → Hugging Face folder → oracle evaluation."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..config import RunConfig, SFTStageConfig
from ..data import PromptTemplate, SupervisedDataModule
from ..distributed import full_parameters, is_global_zero
from ..evaluation import oracle_table
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..models import merge_lora, save_pretrained_atomic
from ..stages import SFTModule
from .components import (
    build_loggers,
    build_policy,
    build_trainer,
    checkpointing,
    datamodule_options,
    ensure_benchmark,
    log_metrics,
    optimizer_options,
    oracle_eval,
    oracle_eval_prompts,
    prepare_trained_model,
    require_datasets,
)

log = logging.getLogger(__name__)


def run_sft(cfg: DictConfig, typed: RunConfig, run_dir: Path) -> dict:
    stage: SFTStageConfig = typed.stage
    data = typed.data
    require_datasets(data.sft_train, "data.sft_train")
    ensure_benchmark(data)
    template = PromptTemplate(data.prompt_template, data.response_prefix)
    model, tokenizer = build_policy(typed.model, template)
    prepare_trained_model(model, typed.model)  # LoRA, activation checkpointing

    datamodule = SupervisedDataModule(
        tokenizer, data.sft_train, data.sft_eval, **datamodule_options(typed, template)
    )
    datamodule.setup("fit")  # bad data fails here, before any evaluation or training
    callbacks, ckpt_path = checkpointing(typed, run_dir)
    trainer = build_trainer(cfg, run_dir, build_loggers(cfg), callbacks)

    eval_prompts = oracle_eval_prompts(typed, stage)
    results: dict = {"num_parameters": model.num_parameters()}
    if eval_prompts and stage.evaluate_before_training and is_global_zero():
        results["init"], _ = oracle_eval(
            model, tokenizer, eval_prompts, template, stage, typed.seed
        )
        log_metrics(trainer, {f"init/{k}": v for k, v in results["init"].items()})

    module = SFTModule(model, **optimizer_options(stage))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    results["train"] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if data.sft_eval:
        # Training usually stops mid-epoch (max_steps): measure the final model once more.
        results["val"] = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    merge_lora(model)  # LoRA adapters folded into the weights: the folder is a plain model
    with full_parameters(trainer, model):  # gathered on every rank, saved by rank 0
        if trainer.is_global_zero:
            save_pretrained_atomic(model, tokenizer, run_dir / "model")
            log.info("saved the SFT policy to %s", run_dir / "model")
    if not trainer.is_global_zero:  # rank 0 evaluates and writes the results
        return {}

    if eval_prompts:
        results["test"], rows = oracle_eval(
            model, tokenizer, eval_prompts, template, stage, typed.seed
        )
        log_metrics(trainer, {f"test/{k}": v for k, v in results["test"].items()})
        write_jsonl_atomic(run_dir / "samples.jsonl", rows)
        _write_summary(run_dir, results)
    write_json_atomic(run_dir / "results.json", results)
    return results


def _write_summary(run_dir: Path, results: dict) -> None:
    columns = {"untrained": results["init"]} if "init" in results else {}
    columns["SFT"] = results["test"]
    table = oracle_table(columns)
    text = f"# SFT: oracle evaluation on held-out benchmark prompts\n\n{table}"
    write_text_atomic(run_dir / "summary.md", text)
    log.info("oracle evaluation (%s):\n%s", run_dir / "summary.md", table)
