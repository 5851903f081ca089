"""The ``trainer`` group's Trainer, with atomic checkpoints written every few steps and resumed
from, and callbacks added by in-process callers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint

from ..checkpoint_io import AtomicCheckpointIO
from ..config import ConfigError, RunConfig, TrainerConfig
from ..stages import PPOStepCheckpoint

log = logging.getLogger(__name__)

_EXTRA_CALLBACKS: ContextVar[tuple] = ContextVar("extra_callbacks", default=())


@contextmanager
def extra_callbacks(*callbacks) -> Iterator[None]:
    """Inside, every Trainer a stage runner builds also gets ``callbacks`` (Lightning callback
    objects): how a program that calls ``run_stage`` in-process (a benchmark, a notebook)
    measures or watches a stage without a config entry."""
    token = _EXTRA_CALLBACKS.set((*_EXTRA_CALLBACKS.get(), *callbacks))
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


def build_trainer(
    cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list, **overrides
) -> pl.Trainer:
    """The ``trainer`` group's Trainer; ``overrides`` replace its arguments (stage-specific).
    Checkpoints are written atomically and read with ``weights_only=True`` unless the group
    sets plugins of its own."""
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    return instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=[*callbacks, *_EXTRA_CALLBACKS.get()],
        default_root_dir=str(run_dir),
        _convert_="all",
        **plugins,
        **overrides,
    )


def checkpointing(
    typed: RunConfig, run_dir: Path, per_ppo_step: bool = False
) -> tuple[list, str | None]:
    """Callbacks that keep ``<run_dir>/checkpoints/last.ckpt`` (every ``stage.checkpoint_every``
    optimizer steps, or PPO steps with ``per_ppo_step``, and at the end), and that file when
    a run resumes. The PPO stage's callback is no ModelCheckpoint: its Trainer needs
    ``enable_checkpointing=False``, or Lightning adds a default one."""
    last = run_dir / "checkpoints" / "last.ckpt"
    callbacks = []
    every = typed.stage.checkpoint_every
    if typed.save_checkpoints and per_ppo_step:
        callbacks.append(PPOStepCheckpoint(last, every))
    elif typed.save_checkpoints:
        callbacks.append(
            ModelCheckpoint(
                dirpath=last.parent,
                save_last=True,
                save_top_k=0,
                every_n_train_steps=every or None,
            )
        )
    if typed.resume and last.exists():
        log.info("resuming from %s", last)
        return callbacks, str(last)
    return callbacks, None


def require_devices(trainer: TrainerConfig) -> None:
    """A ``trainer`` option that needs a CUDA device is refused at once on a machine without
    one (before data or models are read), naming the key."""
    import torch

    if str(trainer.accelerator).lower() in {"gpu", "cuda"} and not torch.cuda.is_available():
        raise ConfigError(
            f"config key 'trainer.accelerator' is {trainer.accelerator!r}, but this machine has "
            "no CUDA device that torch can use (torch.cuda.is_available() is false): run with "
            "trainer=cpu (or trainer=ddp_cpu for several processes)"
        )


def deepspeed_clipping(max_grad_norm: float) -> Callable[[pl.Trainer], None]:
    def configure(trainer: pl.Trainer) -> None:
        if type(trainer.strategy).__name__ == "DeepSpeedStrategy":
            # The engine owns the gradients (partitioned): it clips them, over all trained models.
            trainer.strategy.config["gradient_clipping"] = max_grad_norm

    return configure
