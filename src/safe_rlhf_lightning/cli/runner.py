"""The one skeleton every stage runs through.

``run_stage``: typed config → checks that need no model (devices, hub ids, every data source) →
one writer per run folder → the stage's runner. ``fit_and_report``: the part every training
stage shares (trainer and loggers, the oracle evaluation of a policy before and after, fit,
LoRA merged and folders saved by rank 0, results, also in each W&B run's summary). A stage is
a module, a schema and a small runner that builds a :class:`TrainingJob` (or, when nothing is
trained, does its own work).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue
from torch import nn

from ..config import ConfigError, DataConfig, RunConfig
from ..config.advantage import require_used_critic_settings
from ..data import PromptTemplate, check_sources, datasets_without_safety_labels
from ..distributed import full_parameters, is_global_zero
from ..evaluation import held_out_prompts, oracle_evaluation
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..models import merge_lora
from ..progress import progress_bars
from .advantage import build_advantage
from .constraints import check_constraints
from .data import ensure_benchmark, require_datasets, uses_benchmark
from .env import CONSOLE, console_verbosity, transformers_progress_bars
from .hub import resolve_hub_model, resolve_hub_models
from .loggers import build_loggers, log_metrics, report_results
from .schedules import build_schedule
from .trainer import build_trainer, checkpointing, require_devices

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# What Hydra (and a refused launch) leave in a run folder before a stage has done anything.
BOOKKEEPING = {".hydra", "train.log", "config.yaml"}


@dataclass
class StageContext:
    """One run: the composed config (for what Hydra instantiates), its typed form and folder."""

    cfg: DictConfig
    run: RunConfig
    run_dir: Path

    @property
    def stage(self) -> Any:
        return self.run.stage

    @property
    def data(self) -> DataConfig:
        return self.run.data

    @cached_property
    def template(self) -> PromptTemplate:
        return PromptTemplate(self.data.prompt_template, self.data.response_prefix)


@dataclass(frozen=True)
class DataNeed:
    """A data source a stage reads: its config key, its specs and the record kind expected."""

    key: str
    specs: list[str]
    kind: str
    required: bool = False
    safety_labels: bool = False
    """Every pair must carry consistent safety labels (the cost stage's sign term)."""


@dataclass
class TrainingJob:
    """What a training stage's runner hands the skeleton.

    Args:
        module: the stage's LightningModule.
        fit_inputs: ``trainer.fit``'s data (``datamodule=`` or ``train_dataloaders=``).
        folders: folder name in the run folder → (model, save function ``(model, path)``),
            written by rank 0 after fit with whole parameters and LoRA merged.
        policy: (model, tokenizer) sampled and scored by the oracle before (when
            ``stage.evaluate_before_training``) and after training on held-out benchmark prompts.
        results: the stage's first entries of ``results.json``.
        checkpoint_per_ppo_step: ``stage.checkpoint_every`` counts the module's PPO steps
            (:class:`~safe_rlhf_lightning.stages.PPOStepCheckpoint`), not optimizer steps.
        trainer_overrides: ``Trainer`` arguments that replace the ``trainer`` group's.
        configure_trainer: called with the built Trainer before anything runs (e.g. settings of
            its strategy).
        after_fit: called on every rank right after fit (collective work such as a validation
            pass or gathering per-rank state); returns entries for the results.
        report: called on rank 0 with the trainer and the results: stage-specific evaluation,
            files and ``summary.md``; may add to the results.
    """

    module: pl.LightningModule
    fit_inputs: dict[str, Any]
    folders: dict[str, tuple[nn.Module, Callable[[nn.Module, Path], Any]]]
    policy: tuple[nn.Module, Any] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    checkpoint_per_ppo_step: bool = False
    trainer_overrides: dict[str, Any] = field(default_factory=dict)
    configure_trainer: Callable[[pl.Trainer], None] | None = None
    after_fit: Callable[[pl.Trainer], dict[str, Any]] | None = None
    report: Callable[[pl.Trainer, dict[str, Any]], None] | None = None


def validate_config(cfg: DictConfig) -> RunConfig:
    """Turn the composed config into the typed dataclasses, running every value check."""
    try:
        typed = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise ConfigError(f"config key '{error.full_key}' is required but not set") from None
    except InterpolationResolutionError as error:  # e.g. a round missing from the rounds table
        if isinstance(error.__cause__, ConfigError):
            raise ConfigError(str(error.__cause__)) from None
        # OmegaConf drops the cause unless OC_CAUSE=1; its first line carries the message.
        first = str(error).splitlines()[0]
        raised = "ConfigError raised while resolving interpolation: "
        if first.startswith(raised):
            raise ConfigError(first.removeprefix(raised)) from None
        raise ConfigError(f"config key '{error.full_key}': {first}") from None
    except ValueError as error:  # raised by the schemas' __post_init__, names the key
        raise ConfigError(str(error)) from None
    assert isinstance(typed, RunConfig)
    if typed.lambda_schedule is not None:  # Hydra instantiates it: kept as its plain mapping
        typed.lambda_schedule = OmegaConf.to_container(cfg.lambda_schedule, resolve=True)
        if typed.stage.name == "ppo_lag":
            build_schedule(cfg)  # its options are checked by its constructor, naming them
    if typed.advantage is not None:  # the same for the advantage estimator
        typed.advantage = OmegaConf.to_container(cfg.advantage, resolve=True)
        if typed.stage.name == "ppo_lag":
            require_used_critic_settings(typed.stage, build_advantage(cfg))
    if typed.stage.name == "ppo_lag":
        check_constraints(typed)
    return typed


def require_safety_labelled_data(data: DataConfig) -> None:
    """The cost model's sign term needs PKU-SafeRLHF's safety labels: refuse a registered
    dataset without them (Anthropic HH-RLHF) before any model is built."""
    for key in ("preference_train", "preference_eval"):
        unlabelled = datasets_without_safety_labels(getattr(data, key))
        if unlabelled:
            raise ConfigError(
                f"config key 'data.{key}' lists {', '.join(map(repr, unlabelled))}, preference "
                "pairs without safety labels (helpfulness/harmlessness preferences only): the "
                "cost stage needs safer_response_id and is_response_*_safe for its sign term. "
                "Use them for the reward stage, and PKU-SafeRLHF (data=pku_saferlhf) or your own "
                "safety-labelled pairs for the cost stage"
            )


def run_stage(cfg: DictConfig) -> dict:
    """Validate, check what needs no model, take the run folder, and run the stage."""
    from .stages import STAGES

    typed = validate_config(cfg)
    if typed.stage.name not in STAGES:
        raise ConfigError(f"config key 'stage.name' must be one of {sorted(STAGES)}")
    stage = STAGES[typed.stage.name]
    if typed.stage.name == "cost":
        require_safety_labelled_data(typed.data)
    require_devices(typed.trainer)
    typed.stage = resolve_hub_models(typed.stage)
    if typed.model.name_or_path is not None:
        typed.model.name_or_path = resolve_hub_model(typed.model.name_or_path, "model.name_or_path")
    ensure_benchmark(typed.data)
    check_data(stage.data_needs(typed), typed)
    run_dir = Path(typed.run_dir)
    verbose, bars = typed.verbose, typed.trainer.enable_progress_bar
    with (
        run_folder_lock(run_dir),
        console_verbosity(verbose),
        progress_bars(bars),
        transformers_progress_bars(verbose and bars),
    ):
        pl.seed_everything(typed.seed, workers=True, verbose=False)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        name, started = typed.stage.name, time.monotonic()
        if is_global_zero():
            log.info("stage %s → %s", name, run_dir, extra=CONSOLE)
        results = stage.run(StageContext(cfg, typed, run_dir))
        if is_global_zero():
            elapsed, report = _duration(time.monotonic() - started), _report_file(run_dir)
            log.info("stage %s done in %s → %s", name, elapsed, report, extra=CONSOLE)
        return results


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _report_file(run_dir: Path) -> Path:
    """What to read first in a finished run folder: its report or summary, else the folder."""
    for name in ("report.md", "summary.md"):
        if (run_dir / name).is_file():
            return run_dir / name
    return run_dir


def check_data(needs: list[DataNeed], typed: RunConfig) -> None:
    """Read and validate every record of every source a stage will read, before any model is
    loaded: a bad line at 7B costs no model loading. A RecordError names file, line and field."""
    data = typed.data
    for need in needs:
        if need.required:
            require_datasets(need.specs, need.key)
        if need.specs:
            check_sources(
                need.specs,
                need.kind,
                key=need.key,
                data_root=data.root,
                skip_bad_records=data.skip_bad_records,
                seed=typed.seed,
                safety_labels=need.safety_labels,
            )


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """One writer per run folder: an exclusive lock on ``<run_dir>/.lock`` for the whole run,
    held by global rank 0 (the other ranks of a multi-process run work in the same folder by
    design). The operating system releases it when the process ends, so a lock left by a killed
    run is no obstacle. A second launch into a folder in use is a ConfigError naming the
    process that holds it."""
    if not is_global_zero():
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"run folder {run_dir} is in use by {holder}: wait for it to end, or give this "
                "run its own folder (hydra.run.dir=... or another experiment_name)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def discard_refused_run_folder(run_dir: Path) -> bool:
    """After a run was refused (bad config or data, before any work): remove its folder when it
    holds only what Hydra and the launch wrote there (``.hydra/``, ``train.log``,
    ``config.yaml``, an unheld lock), so that nothing looks like a started run. A folder with
    anything else in it (checkpoints, models, results) is left alone. True when removed."""
    if not run_dir.is_dir():
        return False
    entries = {entry.name for entry in run_dir.iterdir()}
    lock = run_dir / LOCK_FILE
    if lock.exists():
        if lock.read_text(encoding="utf-8").strip():  # held, or its holder was killed
            return False
        entries.discard(LOCK_FILE)
    if not entries <= BOOKKEEPING:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def fit_and_report(ctx: StageContext, job: TrainingJob) -> dict:
    """Train ``job.module``, save its folders, evaluate and write ``results.json``."""
    stage = ctx.stage
    callbacks, ckpt_path = checkpointing(ctx.run, ctx.run_dir, job.checkpoint_per_ppo_step)
    trainer = build_trainer(
        ctx.cfg, ctx.run_dir, build_loggers(ctx.cfg), callbacks, **job.trainer_overrides
    )
    if job.configure_trainer is not None:
        job.configure_trainer(trainer)
    results = dict(job.results)
    prompts = oracle_prompts(ctx) if job.policy is not None else []
    if prompts and stage.evaluate_before_training and is_global_zero():
        results["init"], _ = oracle_evaluation(
            *job.policy, prompts, ctx.template, stage, ctx.run.seed, "sampling before training"
        )
        log_metrics(trainer, {f"init/{k}": v for k, v in results["init"].items()})

    trainer.fit(job.module, ckpt_path=ckpt_path, weights_only=True, **job.fit_inputs)
    train_metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if job.after_fit is not None:
        results |= job.after_fit(trainer)
    save_folders(trainer, job.folders, ctx.run_dir)
    if not trainer.is_global_zero:  # rank 0 evaluates and writes the results
        return {}

    results.setdefault("train", train_metrics)
    if prompts:
        results["test"], rows = oracle_evaluation(
            *job.policy, prompts, ctx.template, stage, ctx.run.seed, "sampling after training"
        )
        log_metrics(trainer, {f"test/{k}": v for k, v in results["test"].items()})
        write_jsonl_atomic(ctx.run_dir / "samples.jsonl", rows)
    if job.report is not None:
        job.report(trainer, results)
    report_results(trainer.loggers, results)
    write_json_atomic(ctx.run_dir / "results.json", results)
    return results


def validation_after_fit(module: pl.LightningModule, datamodule) -> Callable[[pl.Trainer], dict]:
    """An ``after_fit`` that measures the final model on the validation data once more: training
    usually stops mid-epoch (``max_steps``), after the last scheduled validation."""

    def after_fit(trainer: pl.Trainer) -> dict[str, Any]:
        return {"val": trainer.validate(module, datamodule=datamodule, verbose=False)[0]}

    return after_fit


def save_folders(trainer: pl.Trainer, folders: dict, run_dir: Path) -> None:
    """Each (model, save) as ``<run_dir>/<name>``, written by rank 0 with the whole parameters
    (gathered first under sharded strategies: every rank takes part) and LoRA adapters folded
    into the weights, so every folder is a plain Hugging Face folder."""
    for name, (model, save) in folders.items():
        merge_lora(model)
        with full_parameters(trainer, model):
            if trainer.is_global_zero:
                save(model, run_dir / name)
                log.info("saved %s", run_dir / name)


def oracle_prompts(ctx: StageContext) -> list[str]:
    """Held-out benchmark prompts for the oracle (none for real data: no oracle there)."""
    data, stage = ctx.data, ctx.stage
    if stage.eval_limit == 0 or not uses_benchmark(data.prompt_eval):
        return []
    return held_out_prompts(data.prompt_eval, data.root, ctx.run.seed, stage.eval_limit)
