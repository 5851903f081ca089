"""The ``logger`` group's loggers (wandb online only with a key), what identifies a run among
the others (name, tags, command-line overrides, git commit, data digest), and what is computed
outside ``fit`` (oracle evaluations, a stage's results) sent to them."""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytorch_lightning as pl
from hydra.errors import OverrideParseException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .data import MANIFEST

log = logging.getLogger(__name__)


def wandb_api_key_configured() -> bool:
    """A W&B API key in ``WANDB_API_KEY`` or in the netrc entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        credentials = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(credentials and credentials[2])


def choose_wandb_offline(offline: bool | None) -> tuple[bool, str]:
    """``logger.wandb.offline``, with null decided here; also the reason, for the log."""
    if offline is not None:
        return offline, f"logger.wandb.offline={str(offline).lower()}"
    # "dryrun" is what Lightning's WandbLogger(offline=True) writes into WANDB_MODE.
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True, f"WANDB_MODE={mode}"
    if not wandb_api_key_configured():
        return True, "no W&B API key configured"
    return False, "a W&B API key is configured"


@dataclass(frozen=True)
class Launch:
    """How this run was launched: what tells it apart from its siblings."""

    overrides: list[str] = field(default_factory=list)
    """The command-line overrides of this job (a multirun's: this job's values)."""
    swept: dict[str, str] = field(default_factory=dict)
    """Key → this job's value, for each key a multirun sweeps (empty for a single run)."""
    schedule: str | None = None
    """The ``lambda_schedule`` option chosen (``learned``, ``pid``, ``fixed``, ``none``)."""
    groups: frozenset[str] = frozenset()
    """The config groups' names (a swept group is named by its option alone)."""
    estimator: str | None = None
    """The ``advantage`` option chosen (``gae``, ``grpo``, ``dr_grpo``, ``rloo``); None outside a
    Hydra job."""


def launch_of(cfg: DictConfig) -> Launch:
    """The launch facts Hydra knows; outside a Hydra job (the API, tests) only the schedule,
    named after its class (``FixedLambda`` → ``fixed``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    target = OmegaConf.select(cfg, "lambda_schedule._target_")
    schedule = target.rsplit(".", 1)[-1].removesuffix("Lambda").lower() if target else None
    schedule = "none" if schedule == "no" else schedule  # NoLambda is the option ``none``
    if not HydraConfig.initialized():
        return Launch(schedule=schedule)
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    schedule = hydra_cfg.runtime.choices.get("lambda_schedule", schedule)
    estimator = hydra_cfg.runtime.choices.get("advantage")
    groups = frozenset(hydra_cfg.runtime.choices)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return Launch(overrides, {}, schedule, groups, estimator)
    params = hydra_cfg.sweeper.get("params") or {}
    keys = swept_keys([*sys.argv[1:], *(f"{k}={v}" for k, v in params.items())])
    swept = {k: v for k, v in override_values(overrides) if k in keys}
    return Launch(overrides, swept, schedule, groups, estimator)


def override_values(overrides: list[str]) -> list[tuple[str, str]]:
    """(key, value as written) of each parseable override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, pairs = OverridesParser.create(), []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException:  # a flag's value (``-cn train``), not an override
            continue
        pairs.append((override.key_or_group, override.get_value_element_as_str()))
    return pairs


def swept_keys(arguments: list[str]) -> set[str]:
    """The keys these command-line arguments sweep (``nu=1,2``, ``range(...)``, ``glob(...)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, keys = OverridesParser.create(), set()
    for text in arguments:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException:
            continue
        if override.is_sweep_override():
            keys.add(override.key_or_group)
    return keys


def wandb_run_name(experiment: str, round_number: int, stage: str, launch: Launch) -> str:
    """``<experiment>-round<k>-<stage>``, then the λ schedule and a critic-free advantage
    estimator (ppo_lag), and each swept value: ``demo-round1-ppo_lag-fixed-nu0.5-seed1``,
    ``demo-round1-ppo_lag-pid-grpo``. A swept config group is named by its option alone (once:
    the schedule is already there), a swept key by its last part and value."""
    parts = [experiment, f"round{round_number}", stage]
    if stage == "ppo_lag" and launch.schedule:
        parts.append(launch.schedule)
    if stage == "ppo_lag" and launch.estimator not in (None, "gae"):
        parts.append(launch.estimator)
    for key, value in launch.swept.items():
        part = value if key in launch.groups else key.split(".")[-1] + value
        if part not in parts:
            parts.append(part)
    return "-".join(parts)


def wandb_run_tags(
    experiment: str, round_number: int, stage: str, sweep_name: str | None, launch: Launch
) -> list[str]:
    """Experiment, ``round<k>``, stage, the λ schedule (ppo_lag), the sweep's name and one
    ``<key>=<value>`` per swept key: each a filter in the W&B runs table."""
    tags = [experiment, f"round{round_number}", stage]
    if stage == "ppo_lag" and launch.schedule:
        tags.append(f"schedule={launch.schedule}")
    if stage == "ppo_lag" and launch.estimator:
        tags.append(f"advantage={launch.estimator}")
    if sweep_name:
        tags.append(sweep_name)
    return tags + [f"{key}={value}" for key, value in launch.swept.items()]


def git_commit(folder: Path) -> str | None:
    """The commit checked out where this package lives; None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def manifest_digest(data_root: str | None) -> str | None:
    """SHA-256 of the benchmark's ``manifest.json`` under ``data.root`` (None without one): runs
    with the same digest trained on the same generated data."""
    path = Path(data_root or "") / MANIFEST
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def build_loggers(cfg: DictConfig) -> list:
    """The ``logger`` group's loggers, each sent the resolved run config as hyperparameters,
    with the launch under ``launch`` (overrides, swept values, git commit, data digest)."""
    launch = launch_of(cfg)
    loggers = []
    for name, logger_cfg in cfg.logger.items():
        if logger_cfg is None:
            continue
        options = {}
        if name == "wandb":
            _finish_previous_wandb_run()
            options["offline"], reason = choose_wandb_offline(logger_cfg.offline)
            log.info("wandb %s (%s)", "offline" if options["offline"] else "online", reason)
            identity = (cfg.experiment_name, cfg.round, cfg.stage.name)
            if logger_cfg.name is None:
                options["name"] = wandb_run_name(*identity, launch)
            if logger_cfg.tags is None:
                options["tags"] = wandb_run_tags(*identity, cfg.sweep_name, launch)
        loggers.append(instantiate(logger_cfg, _convert_="all", **options))
        if name == "wandb":  # before its run starts
            route_wandb_terminal_to_logging(options["offline"])
        log.info("logging to %s", name)
    hyperparameters = OmegaConf.to_container(cfg, resolve=True)
    hyperparameters["launch"] = {
        "overrides": launch.overrides,
        "swept": launch.swept,
        "git_commit": git_commit(Path(__file__).parent),
        "data_manifest_sha256": manifest_digest(OmegaConf.select(cfg, "data.root")),
    }
    for logger in loggers:
        logger.log_hyperparams(hyperparameters)
    return loggers


def route_wandb_terminal_to_logging(offline: bool) -> None:
    """wandb's own terminal lines (``wandb.termlog``/``termwarn``/``termerror``, 0.31: "Tracking
    run with wandb version ...", "Run data is saved locally in ...", the offline sync hint,
    the run's footer) into this project's log, i.e. ``train.log``, instead of stderr: on the
    console only with ``verbose`` (warnings and errors always). wandb sets its terminal up
    once per process when it loads its settings, printing unless ``WANDB_SILENT``; in its
    silent mode with a fallback logger it prints nothing and logs each line there instead.
    The logger is no child of ``wandb``, which wandb keeps from propagating to the root."""
    import wandb

    if offline:
        # What Lightning's WandbLogger sets just before its run starts: set before wandb reads
        # its settings, or wandb would find the environment changed (and say so).
        os.environ["WANDB_MODE"] = "dryrun"
    wandb.setup()  # loads wandb's settings, which set its terminal up; ours replaces that
    wandb.termsetup(wandb.Settings(silent=True), log.getChild("wandb"))


def _finish_previous_wandb_run() -> None:
    """Each stage its own wandb run: Lightning would reuse one still open in this process (the
    previous job of a Hydra multirun), so it is finished first."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


def log_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Send metrics computed outside ``fit`` (e.g. oracle evaluations) to every logger."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()


def flatten_results(results: dict[str, Any], prefix: str = "") -> dict[str, float | str]:
    """``results.json``'s numbers and strings as ``a/b/c`` keys (``{"test": {"cost_mean": 1}}`` →
    ``test/cost_mean``); a key that already starts with its parent's name keeps it once
    (``train: {train/loss}`` → ``train/loss``). Lists (plot files, per-policy tables) are left
    to the files."""
    flat: dict[str, float | str] = {}
    for key, value in results.items():
        name = key if not prefix or key.startswith(f"{prefix}/") else f"{prefix}/{key}"
        if isinstance(value, dict):
            flat |= flatten_results(value, name)
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
    return flat


def report_results(
    loggers: list, results: dict[str, Any], tables: dict[str, list[dict]] | None = None
) -> None:
    """A stage's results into each W&B run's summary (what the runs table and parallel-coordinates
    views sort by) and ``tables`` (name → rows of one dict each) as W&B tables. CSV and
    TensorBoard have no run summary: they keep the metrics logged during the run, and
    ``results.json`` holds the rest."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        logger.experiment.summary.update(flatten_results(results))
        for name, rows in (tables or {}).items():
            if rows:
                columns = list(dict.fromkeys(key for row in rows for key in row))
                data = [[table_cell(row.get(column)) for column in columns] for row in rows]
                logger.log_table(key=name, columns=columns, data=data)


def table_cell(value: Any) -> Any:
    """A table cell W&B can type: scalars as they are, anything else as its JSON-ish text."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)
