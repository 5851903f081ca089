"""Checkpoints of modules that hold frozen models (PPO's reference, R and C; DPO's reference):
the frozen weights are left out (they are read from their folders again), and every trained
weight must be there when a run resumes."""

from __future__ import annotations

from typing import Any


def without_frozen(state_dict: dict[str, Any], frozen: tuple[str, ...]) -> dict[str, Any]:
    """``state_dict`` less the entries of the frozen models (key prefixes ``frozen``)."""
    return {k: v for k, v in state_dict.items() if not k.startswith(frozen)}


def require_trained_weights(
    expected: dict[str, Any], checkpoint: dict[str, Any], frozen: tuple[str, ...]
) -> None:
    """A ValueError when ``checkpoint`` lacks a weight of ``expected`` (the module's state dict)
    other than the frozen models': a run resumed with other ``model.lora`` settings would
    otherwise restart the trained models silently (``strict_loading`` is off for the frozen
    ones). A checkpoint without a state dict (DeepSpeed restores the weights itself) passes."""
    weights = checkpoint.get("state_dict")
    if weights is None:
        return
    missing = sorted(set(without_frozen(expected, frozen)) - set(weights))
    if missing:
        raise ValueError(
            f"the checkpoint lacks {len(missing)} weights of the trained models (e.g. "
            f"{missing[0]}): it was written with other model settings (model.lora?); resume "
            "with the run's settings, or start over with resume=false"
        )
