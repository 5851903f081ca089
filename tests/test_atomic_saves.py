"""Atomic saves: a failure or a SIGKILL during a save leaves the previous copy loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from safe_rlhf_lightning.checkpoint_io import AtomicCheckpointIO
from safe_rlhf_lightning.files import atomic_file, save_figure_atomic
from safe_rlhf_lightning.models import build_tiny_causal_lm, save_pretrained_atomic
from tests.conftest import TEST_MODEL_SIZE


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_failed_write_keeps_the_previous_content(tmp_path, mode):
    path = tmp_path / "file"
    first, second = ("old", "new") if mode == "w" else (b"old", b"new")
    with atomic_file(path, mode) as file:
        file.write(first)
    with pytest.raises(RuntimeError), atomic_file(path, mode) as file:
        file.write(second)
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no temporary file left


def test_checkpoint_killed_mid_save_leaves_the_previous_one_loadable(tmp_path):
    """A process saves 16 MB checkpoints in a loop and is SIGKILLed at a random moment."""
    path = tmp_path / "last.ckpt"
    script = textwrap.dedent(f"""
        import torch
        from safe_rlhf_lightning.checkpoint_io import AtomicCheckpointIO
        io, step = AtomicCheckpointIO(), 0
        while True:
            io.save_checkpoint({{"step": step, "w": torch.full((4_000_000,), float(step))}},
                               {str(path)!r})
            step += 1
    """)
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while not path.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05 + 0.3 * torch.rand(()).item())  # most likely in the middle of a save
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    checkpoint = AtomicCheckpointIO().load_checkpoint(path)
    assert checkpoint["w"].shape == (4_000_000,)
    assert bool((checkpoint["w"] == checkpoint["step"]).all())
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"half a checkpoint")  # as a kill leaves
    AtomicCheckpointIO().save_checkpoint({"step": -1}, path)  # the next save cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_checkpoints_are_never_unpickled(tmp_path):
    io = AtomicCheckpointIO()
    io.save_checkpoint({"fine": torch.ones(2)}, tmp_path / "a.ckpt")
    with pytest.raises(ValueError, match="only loaded with weights_only=True"):
        io.load_checkpoint(tmp_path / "a.ckpt", weights_only=False)
    torch.save({"code": Path("x")}, tmp_path / "b.ckpt")  # a class to unpickle: refused
    with pytest.raises(Exception, match="Weights only load failed"):
        io.load_checkpoint(tmp_path / "b.ckpt")


def test_model_folder_left_between_the_two_renames_is_recovered(tmp_path, small_tokenizer):
    model = build_tiny_causal_lm(small_tokenizer, seed=0, **TEST_MODEL_SIZE)
    folder = save_pretrained_atomic(model, small_tokenizer, tmp_path / "model")
    folder.rename(tmp_path / "model.old")  # killed after "model -> model.old", before the move
    (tmp_path / "model.tmp").mkdir()  # and a half-written new copy
    save_pretrained_atomic(model, small_tokenizer, folder)
    assert (folder / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_figures_are_saved_whole(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = save_figure_atomic(figure, tmp_path / "plot.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not plt.get_fignums()  # closed
