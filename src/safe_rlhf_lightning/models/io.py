"""Saving model folders so that an interrupted save never replaces a good one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .lora import has_lora


def save_pretrained_atomic(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, folder: str | Path
) -> Path:
    """Write a Hugging Face folder (safetensors weights, config, tokenizer) atomically.

    Everything is written to a sibling temporary folder first, fsynced, and moved into place by
    renames, so a crash mid-save leaves either the previous folder or the new one, never a mix.
    A crash between the two renames leaves the previous copy as ``<folder>.old``: the next save
    (a rerun of the stage) puts it back before anything else.

    A model with LoRA adapters is refused: ``merge_lora`` it first, so that the folder holds
    plain weights that any Hugging Face loader reads.
    """
    if isinstance(model, nn.Module) and has_lora(model):
        raise ValueError(f"merge_lora the {type(model).__name__} before saving it to {folder}")
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    old = folder.with_name(folder.name + ".old")
    if old.exists() and not folder.exists():
        old.rename(folder)  # the last good copy, left by a save killed between its renames
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    _fsync_tree(tmp)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` (and the folder itself) to disk before it is renamed."""
    for path in [*folder.rglob("*"), folder]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        descriptor = os.open(path, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
