"""Runner of the reward and cost stages: score model from the SFT policy → fit → save → evaluate."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ..config import ConfigError, PreferenceStageConfig, RunConfig
from ..data import PreferenceDataModule, PromptTemplate, load_records
from ..distributed import full_parameters
from ..evaluation import plot_score_histograms, preference_metrics, score_preference_records
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..models import ScoreModel, is_score_model_folder, load_tokenizer, merge_lora
from ..stages import CostModule, RewardModule
from .components import (
    build_loggers,
    build_trainer,
    checkpointing,
    datamodule_options,
    ensure_benchmark,
    log_metrics,
    optimizer_options,
    prepare_trained_model,
    require_datasets,
)

log = logging.getLogger(__name__)
MODULES = {"reward": RewardModule, "cost": CostModule}


def run_preference(cfg: DictConfig, typed: RunConfig, run_dir: Path) -> dict:
    stage: PreferenceStageConfig = typed.stage
    data = typed.data
    require_datasets(data.preference_train, "data.preference_train")
    ensure_benchmark(data)
    train_specs = list(data.preference_train) + _collected(stage)
    template = PromptTemplate(data.prompt_template, data.response_prefix)
    model, tokenizer = _load_score_model(stage, typed)

    datamodule = PreferenceDataModule(
        tokenizer,
        train_specs,
        data.preference_eval,
        safety=stage.name == "cost",
        **datamodule_options(typed, template),
    )
    callbacks, ckpt_path = checkpointing(typed, run_dir)
    trainer = build_trainer(cfg, run_dir, build_loggers(cfg), callbacks)
    module = MODULES[stage.name](
        model,
        loss_type=stage.loss_type,
        regularization=stage.regularization,
        **optimizer_options(stage),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    merge_lora(model)  # LoRA adapters folded into the weights: the folder is a plain model
    with full_parameters(trainer, model):  # gathered on every rank, saved by rank 0
        if trainer.is_global_zero:
            model.save_pretrained(run_dir / "model", tokenizer)
            log.info("saved the %s model to %s", stage.name, run_dir / "model")
    if not trainer.is_global_zero:  # rank 0 evaluates and writes the results
        return {}

    results: dict = {"train": {k: float(v) for k, v in trainer.callback_metrics.items()}}
    if data.preference_eval and stage.eval_limit != 0:
        records = load_records(
            data.preference_eval,
            "preference",
            data_root=data.root,
            skip_bad_records=data.skip_bad_records,
            seed=typed.seed,
        )
        rows = score_preference_records(
            model, tokenizer, records[: stage.eval_limit], template,
            max_length=data.max_length, batch_size=stage.eval_batch_size,
        )  # fmt: skip
        results["test"] = preference_metrics(rows, stage.name)
        log_metrics(trainer, {f"test/{k}": v for k, v in results["test"].items()})
        write_jsonl_atomic(run_dir / "scores.jsonl", rows)
        plot_score_histograms(
            rows, run_dir / f"{stage.name}_histogram.png", stage.name, stage.num_histogram_bins
        )
        _write_summary(run_dir, stage.name, results["test"])
    write_json_atomic(run_dir / "results.json", results)
    return results


def _collected(stage: PreferenceStageConfig) -> list[str]:
    """The earlier rounds' collected pairs (``stage.collected_train``); each file must exist."""
    for path in stage.collected_train:
        if not Path(path).is_file():
            round_dir = Path(path).parent.parent.name
            raise ConfigError(
                f"config key 'stage.collected_train' lists {path}, which does not exist: run "
                f"the collect stage of {round_dir} first (make {round_dir}), or set "
                "stage.collected_train=[] to train on the base data only"
            )
    if stage.collected_train:
        log.info(
            "adding the pairs collected in earlier rounds: %s", ", ".join(stage.collected_train)
        )
    return list(stage.collected_train)


def _load_score_model(stage: PreferenceStageConfig, typed: RunConfig):
    init = Path(stage.init_from)
    if not (init / "config.json").is_file():
        raise ConfigError(
            f"config key 'stage.init_from' must be a model folder, got {str(init)!r} (no "
            "config.json there): run the sft stage first, or point it at any causal LM or "
            "score model"
        )
    trust = typed.model.trust_remote_code
    tokenizer = load_tokenizer(str(init), trust_remote_code=trust)
    normalizer = {
        "do_normalize": stage.do_normalize,
        "normalizer_type": stage.normalizer_type,
        "momentum": stage.momentum,
    }
    if is_score_model_folder(init):  # continue from a score model: keep its head
        model = ScoreModel.from_pretrained(
            init, score_type=stage.name, trust_remote_code=trust, **normalizer
        )
    else:  # the paper's choice: a new score head on the SFT policy's transformer
        model = ScoreModel.from_pretrained(
            init,
            score_type=stage.name,
            trust_remote_code=trust,
            score_bias=stage.score_bias,
            **normalizer,
        )
    return prepare_trained_model(model, typed.model).train(), tokenizer


def _write_summary(run_dir: Path, name: str, metrics: dict[str, float]) -> None:
    lines = [
        f"# {name.capitalize()} model: held-out preference pairs",
        "",
        "| metric | value |",
        "|---|---:|",
    ]
    lines += [f"| {key} | {value:.4f} |" for key, value in sorted(metrics.items())]
    lines += ["", f"![{name} scores]({name}_histogram.png)", ""]
    text = "\n".join(lines)
    write_text_atomic(run_dir / "summary.md", text)
    log.info("%s model on held-out pairs:\n%s", name, text)
