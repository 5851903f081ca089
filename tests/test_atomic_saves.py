"""Atomic saves: a failure or a SIGKILL during a save leaves the previous copy loadable."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import safe_rlhf_lightning.files as files
from safe_rlhf_lightning.checkpoint_io import AtomicCheckpointIO, serialized_size
from safe_rlhf_lightning.files import DiskFullError, atomic_file, save_figure_atomic
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


@pytest.mark.slow
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
        deadline = time.monotonic() + 300  # the first save, after importing torch
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


def test_fsdp_loads_a_full_checkpoint_only_once_weights_only_accepts_it(tmp_path, monkeypatch):
    """Lightning's FSDP strategy reads full checkpoints with its own unrestricted unpickler,
    bypassing the checkpoint IO plugin; the strategy the fsdp trainer entry builds checks the
    file with torch's weights_only unpickler first (only this part runs on a CPU)."""
    from lightning_fabric.utilities.load import _lazy_load
    from pytorch_lightning.strategies import FSDPStrategy

    from safe_rlhf_lightning.distributed import fsdp_strategy

    bad, good = tmp_path / "bad.ckpt", tmp_path / "good.ckpt"
    torch.save({"code": Path("x")}, bad)  # any class, rebuilt when unpickled
    torch.save({"fine": torch.ones(2)}, good)
    assert _lazy_load(bad)["code"] == Path("x")  # what Lightning's own FSDP loading would do
    handed = []

    def lightning_loader(self, path, weights_only=None):
        handed.append((path, weights_only))
        return {"loaded": path.name}

    monkeypatch.setattr(FSDPStrategy, "load_checkpoint", lightning_loader)
    strategy = fsdp_strategy(["transformers.models.llama.modeling_llama.LlamaDecoderLayer"])
    assert strategy.load_checkpoint(good) == {"loaded": "good.ckpt"}
    with pytest.raises(Exception, match="Weights only load failed"):
        strategy.load_checkpoint(bad)
    with pytest.raises(ValueError, match="only loaded with weights_only=True"):
        strategy.load_checkpoint(good, weights_only=False)
    assert handed == [(good, True)]  # the bad file never reached Lightning's loader


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


class _FullDisk:
    """A file whose device fills up after ``room`` bytes (``OSError`` ENOSPC, as a real one)."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


@pytest.fixture
def disk_with_room(monkeypatch):
    """``disk_with_room(n)``: from now on, files opened by ``atomic_file`` hold ``n`` bytes."""

    def limit(room: int) -> None:
        real = os.fdopen
        monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: _FullDisk(real(*a, **k), room))

    return limit


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_full_disk_is_one_error_naming_the_file_and_sizes(tmp_path, mode, disk_with_room):
    path = tmp_path / "table.csv"
    with atomic_file(path, mode) as file:
        file.write("old" if mode == "w" else b"old")
    disk_with_room(10)
    with pytest.raises(DiskFullError) as error, atomic_file(path, mode) as file:
        file.write("x" * 8 if mode == "w" else b"x" * 8)
        file.flush()  # 8 bytes reach the disk
        file.write("x" * 8 if mode == "w" else b"x" * 8)
    message = str(error.value)
    assert "\n" not in message and error.value.errno == errno.ENOSPC
    assert f"while writing {path}: 8 bytes were written when the disk filled" in message
    assert re.search(rf"disk filled, [\d,]+ bytes are free in {re.escape(str(tmp_path))};", message)
    assert "its previous copy is intact" in message
    assert error.value.__suppress_context__  # one error, not the chain that set it off
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]  # no temporary file left


def test_other_os_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    real = os.fdopen

    class _Broken(_FullDisk):
        def write(self, data):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: _Broken(real(*a, **k), 0))
    with (
        pytest.raises(OSError, match="Input/output error") as error,
        atomic_file(tmp_path / "a") as f,
    ):
        f.write("x")
    assert not isinstance(error.value, DiskFullError)
    assert list(tmp_path.iterdir()) == []


def _check_full_disk_checkpoint(folder: Path) -> None:
    """A 2 MB checkpoint saved, then a 4.8 MB one that does not fit: one DiskFullError naming the
    file, the size it needs and the free space; no temporary file; the 2 MB one loads."""
    io, path = AtomicCheckpointIO(), folder / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(500_000)}, path)
    bigger = {"step": 2, "w": torch.full((1_200_000,), 2.0)}
    with pytest.raises(DiskFullError) as error:
        io.save_checkpoint(bigger, path)
    free = shutil.disk_usage(folder).free
    assert str(error.value) == (
        f"no space left on the device while writing {path}: it needs "
        f"{serialized_size(bigger):,} bytes, {free:,} bytes are free in {folder}; its previous "
        "copy is intact. Free some space or move the run folder"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    checkpoint = io.load_checkpoint(path)
    assert checkpoint["step"] == 1 and bool((checkpoint["w"] == 1).all())


def test_checkpoint_on_a_full_disk_keeps_the_last_good_one(tmp_path, disk_with_room):
    # Torch's zip writer turns the OSError into "RuntimeError: [enforce fail at
    # inline_container.cc]" while handling it: that chain is recognised as a full disk.
    (tmp_path / "disk").mkdir()
    disk_with_room(3_000_000)
    _check_full_disk_checkpoint(tmp_path / "disk")


@pytest.fixture
def six_megabyte_disk(tmp_path):
    """A real 6 MB filesystem (tmpfs), where the system lets this process mount one (root)."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a 6 MB tmpfs needs root (the simulated full disk still runs)")
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_model_folder_on_a_real_full_filesystem_keeps_the_previous_folder(
    six_megabyte_disk, small_tokenizer
):
    model = build_tiny_causal_lm(small_tokenizer, seed=0, **TEST_MODEL_SIZE)
    folder = save_pretrained_atomic(model, small_tokenizer, six_megabyte_disk / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    filler = six_megabyte_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(six_megabyte_disk).free - 16 * 1024))
    with pytest.raises(DiskFullError) as error:
        save_pretrained_atomic(model, small_tokenizer, folder)
    message = str(error.value)
    assert "\n" not in message and f"while writing {folder}:" in message
    assert "bytes are free" in message and "its previous copy is intact" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in six_megabyte_disk.iterdir()) == ["filler", "model"]


def test_checkpoint_on_a_real_full_filesystem_keeps_the_last_good_one(six_megabyte_disk):
    _check_full_disk_checkpoint(six_megabyte_disk)


@pytest.mark.slow
def test_cli_on_a_full_disk_says_so_in_one_line(six_megabyte_disk, model_folders, benchmark_dir):
    """The run folder on a filesystem with 64 kB left: the first checkpoint does not fit."""
    filler = six_megabyte_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(six_megabyte_disk).free - 64 * 1024))
    run_dir = six_megabyte_disk / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_rlhf_lightning.cli.train",
            "stage=sft",
            "debug=fast",
            "logger=none",
            "stage.max_steps=2",
            "stage.checkpoint_every=1",
            "stage.eval_limit=0",
            "trainer.limit_val_batches=0",
            "model=pretrained",
            f"model.name_or_path={model_folders / 'sft'}",
            f"data.root={benchmark_dir}",
            f"hydra.run.dir={run_dir}",
            f"paths.data_dir={six_megabyte_disk.parent / 'data'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = result.stdout + result.stderr  # Hydra's log handler writes to stdout
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    last = run_dir / "checkpoints" / "last.ckpt"
    assert re.search(
        rf"no space left on the device while writing {re.escape(str(last))}: it needs [\d,]+ "
        r"bytes, [\d,]+ bytes are free in .*; nothing was left there\.",
        output,
    ), output[-3000:]
    assert not list(last.parent.iterdir())  # no temporary file left
