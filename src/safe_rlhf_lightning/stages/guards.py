"""Numerical guards: a NaN or inf in a loss, a score or λ stops the run before it reaches the
weights (so the last checkpoint and the saved models stay good), or, when the stage is so
configured (``stage.skip_nonfinite``), the batch is skipped and counted."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..distributed import all_ranks_agree

log = logging.getLogger(__name__)


class NonFiniteError(FloatingPointError):
    """A loss, score or λ became NaN or infinite."""


def nonfinite_names(values: Mapping[str, Tensor | float | None]) -> list[str]:
    """The names whose value (any element of it) is NaN or infinite; ``None`` values pass."""
    bad = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, Tensor):
            finite = bool(torch.isfinite(value.detach()).all())
        else:
            finite = math.isfinite(value)
        if not finite:
            bad.append(name)
    return bad


class FiniteGuard:
    """Checks named values at one training step: ``True`` = go on; ``False`` = skip this batch
    (``skip=True``, counted in ``skipped``); otherwise :class:`NonFiniteError`.

    With an ``owner`` (the LightningModule), the decision is taken by all ranks together: a
    non-finite value on one rank skips (or stops) the step on every rank, so that no rank waits
    in a gradient all-reduce or a gather that the others skipped."""

    def __init__(self, skip: bool = False, owner: Any = None) -> None:
        self.skip = skip
        self.skipped = 0
        self.owner = owner

    def __call__(self, step: int, what: str, **values: Tensor | float | None) -> bool:
        bad = nonfinite_names(values)
        finite = all_ranks_agree(self.owner, not bad) if self.owner is not None else not bad
        if finite:
            return True
        names = ", ".join(bad) if bad else "values on another rank"
        if not self.skip:
            raise NonFiniteError(
                f"non-finite {names} in the {what} of step {step}: stopped before any weight was "
                "updated with it (the last checkpoint and saved models are intact). Lower the "
                "learning rate or check the inputs; stage.skip_nonfinite=true skips such batches"
            )
        self.skipped += 1
        log.warning(
            "skipped the %s of step %d: non-finite %s (%d skipped so far)",
            what,
            step,
            names,
            self.skipped,
        )
        return False


def guarded_loss(module, loss: Tensor) -> Tensor | None:
    """A training step's return value under ``module.guard``: the loss, or ``None`` (Lightning
    then skips the update) when the loss is not finite and skipping is on."""
    if module.guard(module.global_step, "loss", loss=loss):
        return loss
    module.log("train/skipped_batches", float(module.guard.skipped))
    return None
