"""Builds components from the typed config. The only place (with ``train.py``) that knows Hydra."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from ..benchmark import benchmark_corpus, generate_benchmark
from ..config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    PolicyStageConfig,
    RunConfig,
    TrainingStageConfig,
)
from ..data import PromptTemplate, load_records
from ..evaluation import oracle_evaluate_policy
from ..models import (
    add_missing_special_tokens,
    build_tiny_causal_lm,
    load_causal_lm,
    load_tokenizer,
    train_bpe_tokenizer,
)

log = logging.getLogger(__name__)

BENCHMARK_PREFIX = "benchmark-"
MANIFEST = "manifest.json"


def require_datasets(specs: list[str], key: str) -> list[str]:
    if not specs:
        raise ConfigError(
            f"config key '{key}' is empty: this stage needs at least one dataset spec "
            "'name[:proportion[:path]]' (e.g. data=benchmark, or data=local with your files)"
        )
    return specs


def uses_benchmark(specs: list[str]) -> bool:
    return bool(specs) and all(spec.startswith(BENCHMARK_PREFIX) for spec in specs)


def ensure_benchmark(data: DataConfig) -> Path | None:
    """Generate the embedded benchmark into ``data.root`` when it is missing (and asked for).

    An existing benchmark made with another seed is an error rather than silently overwritten.
    """
    if not data.generate_benchmark:
        return None
    root = Path(data.root)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        seed = json.loads(manifest_path.read_text()).get("seed")
        if seed != data.benchmark_seed:
            raise ConfigError(
                f"{root} holds the benchmark generated with seed {seed}, but "
                f"data.benchmark_seed={data.benchmark_seed}: point data.root elsewhere or delete it"
            )
        return root
    log.info("generating the embedded benchmark (seed %d) into %s", data.benchmark_seed, root)
    generate_benchmark(root, seed=data.benchmark_seed)
    return root


def build_policy(model_cfg: ModelConfig, template: PromptTemplate):
    """The policy and its tokenizer: the tiny default or any Hugging Face causal LM."""
    if model_cfg.name_or_path is None:
        tiny = model_cfg.tiny
        # Every training sequence starts with the template, so it is weighted like the prompts
        # themselves; otherwise BPE spends no merges on its rare upper-case words and spells
        # "BEGINNING OF CONVERSATION" letter by letter, a third of each sequence.
        world = benchmark_corpus()
        corpus = [*world, *[template.format_prompt("")] * len(world)]
        tokenizer = train_bpe_tokenizer(corpus, vocab_size=tiny.vocab_size)
        model = build_tiny_causal_lm(
            tokenizer,
            hidden_size=tiny.hidden_size,
            num_layers=tiny.num_layers,
            num_heads=tiny.num_heads,
            intermediate_size=tiny.intermediate_size,
            max_position_embeddings=tiny.max_position_embeddings,
            seed=tiny.seed,
        )
        return model, tokenizer
    tokenizer = load_tokenizer(
        model_cfg.tokenizer or model_cfg.name_or_path, trust_remote_code=model_cfg.trust_remote_code
    )
    model = load_causal_lm(
        model_cfg.name_or_path, trust_remote_code=model_cfg.trust_remote_code, dtype=model_cfg.dtype
    )
    add_missing_special_tokens(tokenizer, model)
    return model, tokenizer


def datamodule_options(typed: RunConfig, template: PromptTemplate) -> dict:
    """The DataModule arguments every stage takes from ``data`` and the stage's batch sizes."""
    data, stage = typed.data, typed.stage
    return {
        "data_root": data.root,
        "template": template,
        "max_length": data.max_length,
        "batch_size": stage.batch_size,
        "eval_batch_size": stage.eval_batch_size,
        "num_workers": data.num_workers,
        "skip_bad_records": data.skip_bad_records,
        "seed": typed.seed,
    }


def optimizer_options(stage: TrainingStageConfig) -> dict:
    """AdamW and schedule arguments of a stage module, from the stage's config."""
    return {
        "lr": stage.lr,
        "weight_decay": stage.weight_decay,
        "adam_betas": tuple(stage.adam_betas),
        "lr_scheduler": stage.lr_scheduler,
        "lr_warmup_ratio": stage.lr_warmup_ratio,
    }


def build_loggers(cfg: DictConfig) -> list:
    loggers = []
    for name, logger_cfg in cfg.logger.items():
        if logger_cfg is not None:
            loggers.append(instantiate(logger_cfg))
            log.info("logging to %s", name)
    return loggers


def build_trainer(
    cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list, **overrides
) -> pl.Trainer:
    """The ``trainer`` group's Trainer; ``overrides`` replace its arguments (stage-specific)."""
    return instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        _convert_="all",
        **overrides,
    )


def checkpointing(typed: RunConfig, run_dir: Path) -> tuple[list, str | None]:
    """Callbacks that keep ``<run_dir>/checkpoints/last.ckpt``, and that file when a run resumes."""
    last = run_dir / "checkpoints" / "last.ckpt"
    callbacks = []
    if typed.save_checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=last.parent, save_last=True, save_top_k=0))
    if typed.resume and last.exists():
        log.info("resuming from %s", last)
        return callbacks, str(last)
    return callbacks, None


def oracle_eval_prompts(typed: RunConfig, stage: PolicyStageConfig) -> list[str]:
    """Held-out benchmark prompts for the oracle (none for real data: no oracle there)."""
    data = typed.data
    if stage.eval_limit == 0 or not uses_benchmark(data.prompt_eval):
        return []
    records = load_records(data.prompt_eval, "prompt", data_root=data.root, seed=typed.seed)
    prompts = [record.prompt for record in records]
    random.Random(typed.seed).shuffle(prompts)
    return prompts[: stage.eval_limit]


def oracle_eval(model, tokenizer, prompts, template, stage: PolicyStageConfig, seed: int):
    """Sample ``model`` on ``prompts`` with the stage's eval settings; oracle metrics and rows.

    Sampling uses its own RNG stream seeded with ``seed``: the same policy gets the same samples
    in every run (so baselines compare across runs), and training's RNG is left untouched.
    """
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return oracle_evaluate_policy(
            model,
            tokenizer,
            prompts,
            template,
            max_new_tokens=stage.eval_max_new_tokens,
            temperature=stage.eval_temperature,
            top_p=stage.eval_top_p,
            batch_size=stage.eval_batch_size,
        )


def log_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Send metrics computed outside ``fit`` (e.g. oracle evaluations) to every logger."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a sibling temporary file, then rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: object) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
