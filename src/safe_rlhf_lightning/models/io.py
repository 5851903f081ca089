"""Saving model folders so that an interrupted save never replaces a good one, in a form that
both this stack (transformers 5) and older ones (transformers 4.x, tokenizers < 0.20, which
upstream safe-rlhf pins) read."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..files import DiskFullError, disk_full
from .lora import has_lora

log = logging.getLogger(__name__)


def save_pretrained_atomic(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, folder: str | Path
) -> Path:
    """Write a Hugging Face folder (safetensors weights, config, tokenizer) atomically.

    Everything is written to a sibling temporary folder first, fsynced, and moved into place by
    renames, so a crash mid-save leaves either the previous folder or the new one, never a mix.
    A crash between the two renames leaves the previous copy as ``<folder>.old``: the next save
    (a rerun of the stage) puts it back before anything else.

    A full disk removes the temporary folder and raises ``files.DiskFullError`` (the previous
    folder stays). A model with LoRA adapters is refused: ``merge_lora`` it first, so that the
    folder holds plain weights that any Hugging Face loader reads. The saved JSON files also
    carry the fields older readers need (see ``add_legacy_fields``).
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
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        add_legacy_fields(tmp)
        _fsync_tree(tmp)
    except BaseException as error:
        written = (
            sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) if tmp.exists() else 0
        )
        shutil.rmtree(tmp, ignore_errors=True)
        if disk_full(error):  # one line for the user, the previous folder untouched
            free = shutil.disk_usage(folder.parent).free
            raise DiskFullError(folder, written, free) from None
        raise
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


def add_legacy_fields(folder: Path) -> None:
    """Rewrite the JSON files of a saved folder so that transformers 4.x and tokenizers 0.19 read
    them as transformers 5 does; transformers 5 reads the rewritten files as it read its own."""
    for name, rewrite in (
        ("config.json", legacy_model_config),
        ("tokenizer_config.json", legacy_tokenizer_config),
        ("tokenizer.json", legacy_tokenizer_json),
    ):
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        rewritten = rewrite(data)
        if rewritten != data:
            text = json.dumps(
                rewritten, indent=2, sort_keys=name == "config.json", ensure_ascii=False
            )
            path.write_text(text + "\n", encoding="utf-8")


def legacy_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """A model config with its RoPE settings also where transformers 4.x looks for them.

    transformers 5 keeps them only in ``rope_parameters``; 4.x ignores that key and falls back to
    ``rope_theta`` = 10000 and no scaling, so a backbone with another theta would score
    differently there. 5 reads ``rope_parameters`` first, so the copies change nothing here.
    """
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope:
        return config  # no RoPE, or one entry per layer type (no single 4.x equivalent)
    legacy = {**config, "rope_theta": rope["rope_theta"]}
    if rope.get("rope_type", "default") != "default":
        legacy["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    return legacy


def legacy_tokenizer_config(config: dict[str, Any]) -> dict[str, Any]:
    """``tokenizer_class`` named so that transformers 4.x finds it: transformers 5 writes
    ``TokenizersBackend`` (absent from 4.x) for a plain fast tokenizer, and loads the older name
    ``PreTrainedTokenizerFast`` as that same class."""
    if config.get("tokenizer_class") != "TokenizersBackend":
        return config
    return {**config, "tokenizer_class": "PreTrainedTokenizerFast"}


def legacy_tokenizer_json(data: dict[str, Any]) -> dict[str, Any]:
    """BPE merges as ``"a b"`` strings, the only form tokenizers before 0.20 parse (newer ones
    read both and write ``["a", "b"]`` pairs). Kept as pairs when a token contains a space, which
    the string form cannot express (byte-level BPE never does: it spells a space as "Ġ")."""
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        return data
    merges = model.get("merges") or []
    if not any(isinstance(merge, list) for merge in merges):
        return data
    if any(" " in token for merge in merges if isinstance(merge, list) for token in merge):
        log.info(
            "BPE merges kept as pairs (a token holds a space): tokenizers < 0.20 cannot read "
            "this tokenizer.json"
        )
        return data
    strings = [" ".join(merge) if isinstance(merge, list) else merge for merge in merges]
    return {**data, "model": {**model, "merges": strings}}
