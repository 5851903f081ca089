"""Process-wide defaults that must be set before transformers / datasets / wandb are imported."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

OFFLINE_DEFAULTS = {
    # Hub look-ups retry for up to a minute without these; a user with network access can set
    # them to 0 in the environment to download models and datasets by name.
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    # No WANDB_MODE here: the wandb logger picks its mode itself (offline unless a key is
    # configured, see components.choose_wandb_offline), and a default here would hide the key.
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_defaults() -> None:
    for key, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


class BelowLevel(logging.Filter):
    """Passes records below ``level`` (the console handler on stdout: errors go to stderr)."""

    def __init__(self, level: str | int) -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


CONSOLE_NOISE = (
    # Lightning's advertisement for its own cloud logger, once per Trainer.
    r"💡 Tip: .*litlogger",
    # Lightning's device summary, once per Trainer: the trainer group says what runs where.
    r"(GPU|TPU|HPU) available: ",
    # Lightning 2.6 calls torch's deprecated LeafSpec check itself, once per fit: nothing a
    # user of this project can change (pytorch_lightning/utilities/_pytree.py).
    r"isinstance\(treespec, LeafSpec\)` is deprecated",
)
"""Third-party lines kept off the console (each still reaches ``train.log``): patterns searched
in a record's message, warnings included once ``logging.captureWarnings`` routes them to
logging."""


CONSOLE = {"console": True}
"""``extra`` of a log record meant for the console in a quiet run (a stage's start and end):
``log.info("...", extra=CONSOLE)``."""

_verbose = False


@contextmanager
def console_verbosity(verbose: bool) -> Iterator[None]:
    """Inside, with ``verbose``: every record but the known noise on the console, as in
    ``train.log``; without (the default): only warnings, errors and the records marked
    :data:`CONSOLE`."""
    global _verbose
    before, _verbose = _verbose, verbose
    try:
        yield
    finally:
        _verbose = before


class QuietConsole(logging.Filter):
    """The console handler's filter (``train.log`` keeps every line): drops the records
    matching :data:`CONSOLE_NOISE`, and unless ``verbose``, every record below WARNING that is
    not marked :data:`CONSOLE` (data loading, model building, summaries: they are in
    ``train.log`` and the run folder's ``summary.md`` / ``report.md``)."""

    PATTERN = re.compile("|".join(CONSOLE_NOISE))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.PATTERN.search(record.getMessage()):
            return False
        if _verbose or record.levelno >= logging.WARNING or getattr(record, "console", False):
            return True
        # Hydra's launcher, which names each job of a multirun ("#3 : stage=ppo_lag ...") once
        # the first job's logging has taken over the console.
        return record.name.startswith("hydra.")


@contextmanager
def transformers_progress_bars(enabled: bool) -> Iterator[None]:
    """transformers 5.x draws a tqdm bar on stderr in every ``from_pretrained`` ("Loading
    weights") and ``save_pretrained`` ("Writing model shards"), and a stage loads up to six
    models: inside, shown only when ``enabled`` (a stage: with ``verbose`` and its bars on; the
    stages draw their own bars over their long loops), as before afterwards (a hub download
    before a stage keeps its bar). wandb's own lines: ``loggers.route_wandb_terminal_to_logging``.
    """
    from transformers.utils import logging as transformers_logging

    def show(on: bool) -> None:
        if on:
            transformers_logging.enable_progress_bar()
        else:
            transformers_logging.disable_progress_bar()

    before = transformers_logging.is_progress_bar_enabled()
    show(enabled)
    try:
        yield
    finally:
        show(before)
