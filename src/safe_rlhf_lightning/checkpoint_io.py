"""Lightning checkpoints written atomically and read back without unpickling code.

Lightning's default ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary
file lives in the system's temp folder: where that is another filesystem (a tmpfs, a node-local
disk), the final move is a copy, and a kill during it leaves a truncated ``last.ckpt``. Here the
temporary file is a sibling of the checkpoint, fsynced, then renamed: the previous checkpoint
stays loadable until the new one is complete. Loading always uses ``weights_only=True`` (every
state this project puts in a checkpoint is tensors and plain Python values). A full disk is one
:class:`~safe_rlhf_lightning.files.DiskFullError` naming the checkpoint, its size and the free
space, with the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from .files import DiskFullError, atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options!r}"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temporary files of saves that were killed (one writer per run folder: none is live).
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
        try:
            with atomic_file(path, "wb") as file:
                torch.save(checkpoint, file)
        except DiskFullError as error:
            raise error.with_needed(serialized_size(checkpoint)) from None

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(
                f"{path}: checkpoints are only loaded with weights_only=True (no pickled code)"
            )
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        if (
            map_location is None
        ):  # Lightning's default: tensors stay on the device they were saved from
            map_location = _keep_device
        return torch.load(path, map_location=map_location, weights_only=True)


def serialized_size(checkpoint: dict[str, Any]) -> int:
    """Bytes ``torch.save`` writes for ``checkpoint``, counted without storing them."""
    counter = _ByteCounter()
    torch.save(checkpoint, counter)
    return counter.count


class _ByteCounter:
    """A write-only file that keeps only the number of bytes written to it."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def _keep_device(storage: Any, location: str) -> Any:
    return storage
