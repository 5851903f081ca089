"""What a PPO-Lagrangian checkpoint holds beyond Lightning's own state: the trained models only
(the frozen reference, R and the cost models are read from their folders again), the λ schedule
of every constraint (by name), the PPO history and step, the skipped-batch count and every
rank's random generators, so that a resumed run, on one process or many, goes on as the
uninterrupted one would have; and when it is written (:class:`PPOStepCheckpoint`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl

from ..config import PPOLagStageConfig
from ..distributed import gather_objects
from .frozen import require_trained_weights, without_frozen
from .guards import FiniteGuard
from .ppo_lag_constraints import Constraint, schedules_state
from .rng_state import capture_rng_states, restore_rng_states


class CheckpointedPPO(Protocol):
    """What a PPO-Lagrangian checkpoint reads from and restores into the module: its weights
    (``state_dict``), every constraint's λ schedule, step history and count, skipped-batch count
    and rank."""

    constraints: list[Constraint]
    advantage: Any  # the advantage estimator (config.advantage); its ``name`` is checked
    history: list[dict[str, float]]
    ppo_step: int
    guard: FiniteGuard
    config: PPOLagStageConfig
    global_rank: int

    def state_dict(self) -> dict[str, Any]: ...

    def frozen_names(self) -> tuple[str, ...]: ...


def pack(module: CheckpointedPPO, checkpoint: dict[str, Any]) -> None:
    """Fill ``checkpoint`` (``on_save_checkpoint``). Collective under DDP: Lightning builds the
    checkpoint on every rank and rank 0 writes it, so every rank's generators are gathered."""
    checkpoint["state_dict"] = without_frozen(checkpoint["state_dict"], _frozen(module))
    checkpoint["lambda_schedules"] = schedules_state(module.constraints)
    checkpoint["advantage_estimator"] = module.advantage.name
    checkpoint["ppo_history"] = list(module.history)
    checkpoint["ppo_step"] = module.ppo_step
    checkpoint["skipped_batches"] = module.guard.skipped
    checkpoint["rng_states"] = capture_rng_states()
    # Ranks whose responses end at other lengths consume their streams differently.
    checkpoint["rng_states_per_rank"] = gather_objects(checkpoint["rng_states"])


def unpack(module: CheckpointedPPO, checkpoint: dict[str, Any], trainer: pl.Trainer | None) -> None:
    """Restore ``module`` from ``checkpoint`` (``on_load_checkpoint``; ``trainer`` is the one it
    is attached to, None outside a fit); a checkpoint of another λ schedule, or one lacking
    trained weights, or of another advantage estimator, or of other constraints, is a ValueError
    saying what to do."""
    schedules = _saved_schedules(checkpoint, module.constraints)
    if list(schedules) != [c.name for c in module.constraints]:
        raise ValueError(
            f"the checkpoint was trained with the constraints {list(schedules)}, this run has "
            f"{[c.name for c in module.constraints]}: give the run its own hydra.run.dir "
            "(or resume=false)"
        )
    for constraint in module.constraints:
        saved, own = schedules[constraint.name]["type"], type(constraint.schedule).__name__
        if saved != own:
            where = "" if len(schedules) == 1 else f" of constraint {constraint.name}"
            raise ValueError(
                f"the checkpoint was trained with the {saved} λ schedule{where}, this run uses "
                f"{own}: give the run its own hydra.run.dir (or resume=false)"
            )
    saved = checkpoint.get("advantage_estimator", "gae")  # older checkpoints: gae
    if saved != module.advantage.name:
        raise ValueError(
            f"the checkpoint was trained with the {saved} advantage estimator, this run uses "
            f"{module.advantage.name}: give the run its own hydra.run.dir (or resume=false)"
        )
    require_trained_weights(module.state_dict(), checkpoint, _frozen(module))
    for constraint in module.constraints:
        constraint.schedule.load_state_dict(schedules[constraint.name]["state"])
    module.history = list(checkpoint.get("ppo_history", []))
    module.ppo_step = checkpoint.get("ppo_step", 0)
    module.guard.skipped = checkpoint.get("skipped_batches", 0)
    if trainer is not None and module.ppo_step >= module.config.max_steps:
        # Written after the last step (killed before the folders were saved): nothing is left
        # to do, though Lightning's optimizer-step limit is not reached if updates were skipped.
        trainer.should_stop = True
    per_rank = checkpoint.get("rng_states_per_rank") or []
    world_size = trainer.world_size if trainer is not None else 1
    if len(per_rank) == world_size:
        restore_rng_states(per_rank[module.global_rank])
    elif rng := checkpoint.get("rng_states"):  # another world size: rank 0's for all
        restore_rng_states(rng)


def _frozen(module: CheckpointedPPO) -> tuple[str, ...]:
    """The state-dict key prefixes of the frozen models."""
    return tuple(f"{name}." for name in module.frozen_names())


def _saved_schedules(
    checkpoint: dict[str, Any], constraints: list[Constraint]
) -> dict[str, dict[str, Any]]:
    """The checkpoint's schedules by constraint name; a checkpoint written before there were
    several constraints holds one, the first constraint's."""
    if "lambda_schedules" in checkpoint:
        return checkpoint["lambda_schedules"]
    state = {"type": checkpoint.get("lambda_schedule_type"), "state": checkpoint["lambda_schedule"]}
    return {constraints[0].name: state}


class PPOStepCheckpoint(pl.Callback):
    """Writes ``path`` (``last.ckpt``) when a PPO step ends with ``ppo_step % every == 0``, and
    at the end of training; ``every`` = 0: at the end of each pass over the prompts and of
    training.

    Keyed on the module's ``ppo_step`` rather than on Lightning's optimizer steps: a PPO step
    makes ``updates_per_rollout`` of those only when no minibatch or rollout is skipped
    (``skip_nonfinite``), so after a skip a cadence on optimizer steps would drift, or never
    come due again. Every rank calls it (saving gathers every rank's generators)."""

    def __init__(self, path: str | Path, every: int) -> None:
        self.path, self.every = Path(path), every
        self.saved_step: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.saved_step = pl_module.ppo_step  # a resumed run starts from this step's checkpoint

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        if self.every and pl_module.ppo_step % self.every == 0:
            self._save(trainer, pl_module.ppo_step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if not self.every:
            self._save(trainer, pl_module.ppo_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._save(trainer, pl_module.ppo_step)

    def _save(self, trainer: pl.Trainer, step: int) -> None:
        if step != self.saved_step:
            trainer.save_checkpoint(self.path)
            self.saved_step = step
