"""Process-wide defaults that must be set before transformers / datasets / wandb are imported."""

from __future__ import annotations

import logging
import os

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
