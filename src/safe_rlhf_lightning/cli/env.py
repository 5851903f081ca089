"""Process-wide defaults that must be set before transformers / datasets / wandb are imported."""

from __future__ import annotations

import logging
import os
import re

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


class QuietConsole(logging.Filter):
    """Drops the records matching :data:`CONSOLE_NOISE` (the console handler only, so that the
    run's ``train.log`` keeps every line)."""

    PATTERN = re.compile("|".join(CONSOLE_NOISE))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.PATTERN.search(record.getMessage())
