"""The ``logger`` group's loggers (wandb online only with a key), and metrics computed outside
``fit`` sent to them."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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


def build_loggers(cfg: DictConfig) -> list:
    """The ``logger`` group's loggers, each sent the resolved run config as hyperparameters."""
    loggers = []
    for name, logger_cfg in cfg.logger.items():
        if logger_cfg is None:
            continue
        options = {}
        if name == "wandb":
            _finish_previous_wandb_run()
            options["offline"], reason = choose_wandb_offline(logger_cfg.offline)
            log.info("wandb %s (%s)", "offline" if options["offline"] else "online", reason)
        loggers.append(instantiate(logger_cfg, _convert_="all", **options))
        log.info("logging to %s", name)
    hyperparameters = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(hyperparameters)
    return loggers


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
