"""Non-finite values injected into PPO steps chosen by number, for the tests of skipped rollouts
and minibatches: the same steps fail in an uninterrupted run and in a killed and resumed one.

``python -c "import tests.ppo_faults as f; f.run_cli()" <overrides>`` runs ``safe-rlhf-train``
with :data:`DEFAULT_FAULTS` installed (for the subprocess tests)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch

from safe_rlhf_lightning.stages import PPOLagModule

# PPO steps whose first minibatch loss is NaN, and steps whose rollout has NaN costs.
DEFAULT_FAULTS = {"minibatch_steps": (1, 5), "cost_steps": (3,)}


def inject_nonfinite(
    set_attribute: Callable[[Any, str, Any], None],
    minibatch_steps: Collection[int] = (),
    cost_steps: Collection[int] = (),
) -> None:
    """Patch :class:`PPOLagModule` with ``set_attribute`` (pytest's
    ``monkeypatch.setattr``, to undo it after a test): the first minibatch loss of each of
    ``minibatch_steps`` and the cost scores of the rollouts of ``cost_steps`` become NaN."""
    real_loss, real_rollout = PPOLagModule.minibatch_loss, PPOLagModule.make_rollout

    def minibatch_loss(self, *args, **kwargs):
        loss, stats = real_loss(self, *args, **kwargs)
        if self.ppo_step in minibatch_steps and getattr(self, "_nan_step", None) != self.ppo_step:
            self._nan_step = self.ppo_step  # only the step's first minibatch
            loss = loss * float("nan")
        return loss, stats

    def make_rollout(self, prompts):
        rollout = real_rollout(self, prompts)
        if self.ppo_step in cost_steps:
            rollout = rollout._replace(cost=torch.full_like(rollout.cost, float("nan")))
        return rollout

    set_attribute(PPOLagModule, "minibatch_loss", minibatch_loss)
    set_attribute(PPOLagModule, "make_rollout", make_rollout)


def run_cli() -> None:
    import builtins

    from safe_rlhf_lightning.cli.train import main

    inject_nonfinite(builtins.setattr, **DEFAULT_FAULTS)
    main()
