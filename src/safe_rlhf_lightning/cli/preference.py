"""Runner of the reward and cost stages: score model from the SFT policy → fit → save → evaluate."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import ConfigError, PreferenceStageConfig, RunConfig
from ..data import PreferenceDataModule, load_records
from ..evaluation import plot_score_histograms, preference_metrics, score_preference_records
from ..files import write_jsonl_atomic, write_text_atomic
from ..models import ScoreModel, is_score_model_folder, load_tokenizer
from ..stages import CostModule, RewardModule
from .data import datamodule_options
from .hub import require_model_folder
from .loggers import log_metrics
from .models import prepare_trained_model
from .runner import DataNeed, StageContext, TrainingJob, fit_and_report, validation_after_fit

log = logging.getLogger(__name__)
MODULES = {"reward": RewardModule, "cost": CostModule}


def preference_data(run: RunConfig) -> list[DataNeed]:
    data, cost = run.data, run.stage.name == "cost"
    return [
        DataNeed("data.preference_train", data.preference_train, "preference", True, cost),
        DataNeed("stage.collected_train", _collected(run.stage), "preference", False, cost),
        DataNeed("data.preference_eval", data.preference_eval, "preference", False, cost),
    ]


def run_preference(ctx: StageContext) -> dict:
    stage: PreferenceStageConfig = ctx.stage
    data = ctx.data
    require_model_folder(
        stage.init_from,
        "stage.init_from",
        "run the sft stage first, or point it at any causal LM or score model",
    )
    if stage.collected_train:
        log.info(
            "adding the pairs collected in earlier rounds: %s", ", ".join(stage.collected_train)
        )
    tokenizer = load_tokenizer(stage.init_from, trust_remote_code=ctx.run.model.trust_remote_code)
    model = _load_score_model(stage, ctx.run)
    datamodule = PreferenceDataModule(
        tokenizer,
        list(data.preference_train) + _collected(stage),
        data.preference_eval,
        safety=stage.name == "cost",
        categories=stage.categories,
        **datamodule_options(ctx.run, ctx.template),
    )

    def report(trainer, results: dict) -> None:
        # The held-out report scores one head: a multi-head model is measured by a last pass of
        # its validation instead (results' "val": accuracy and accuracy_sign per category).
        if data.preference_eval and stage.eval_limit != 0 and not stage.categories:
            results["test"] = _evaluate(ctx, model, tokenizer)
            log_metrics(trainer, {f"test/{k}": v for k, v in results["test"].items()})

    module = MODULES[stage.name](model, stage)
    per_head = stage.categories and data.preference_eval
    job = TrainingJob(
        module,
        {"datamodule": datamodule},
        folders={"model": (model, lambda m, path: m.save_pretrained(path, tokenizer))},
        after_fit=validation_after_fit(module, datamodule) if per_head else None,
        report=report,
    )
    return fit_and_report(ctx, job)


def _evaluate(ctx: StageContext, model: ScoreModel, tokenizer) -> dict[str, float]:
    """Both scores of every held-out pair (``scores.jsonl``), accuracies, a histogram and
    ``summary.md``."""
    stage, data = ctx.stage, ctx.data
    records = load_records(
        data.preference_eval,
        "preference",
        data_root=data.root,
        skip_bad_records=data.skip_bad_records,
        seed=ctx.run.seed,
    )
    rows = score_preference_records(
        model,
        tokenizer,
        records[: stage.eval_limit],
        ctx.template,
        max_length=data.max_length,
        batch_size=stage.eval_batch_size,
        progress="scoring held-out pairs",
    )
    metrics = preference_metrics(rows, stage.name)
    write_jsonl_atomic(ctx.run_dir / "scores.jsonl", rows)
    histogram = ctx.run_dir / f"{stage.name}_histogram.png"
    plot_score_histograms(rows, histogram, stage.name, stage.num_histogram_bins)
    _write_summary(ctx.run_dir, stage.name, metrics)
    return metrics


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
    return list(stage.collected_train)


def _load_score_model(stage: PreferenceStageConfig, run: RunConfig) -> ScoreModel:
    """A score model to train: a new score head on the given model's transformer (the paper's
    choice: the SFT policy), or a score model (ours or upstream's layout) whose head is kept."""
    normalizer = {
        "do_normalize": stage.do_normalize,
        "normalizer_type": stage.normalizer_type,
        "momentum": stage.momentum,
    }
    if not is_score_model_folder(stage.init_from):  # a causal LM: a new head, with or without bias
        normalizer["score_bias"] = stage.score_bias
        if stage.categories:  # one head per harm category
            normalizer["score_dim"] = len(stage.categories)
    elif stage.categories:
        raise ConfigError(
            "config key 'stage.categories' needs new heads: set stage.init_from to a causal LM "
            "(the SFT policy), not a score model"
        )
    model = ScoreModel.from_pretrained(
        stage.init_from,
        score_type=stage.name,
        retype=True,  # a score model of another kind may start this one: its head is kept
        trust_remote_code=run.model.trust_remote_code,
        **normalizer,
    )
    return prepare_trained_model(model, run.model).train()


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
