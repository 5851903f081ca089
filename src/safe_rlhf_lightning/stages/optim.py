"""Optimizer and learning-rate schedule shared by the stages (upstream safe-rlhf's choices)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import get_scheduler


def decay_parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and normalisation weights (1-D parameters)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def adamw_with_warmup(
    model: nn.Module | list[dict],
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    scheduler: str,
    warmup_ratio: float,
    total_steps: int,
    fused: bool,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a linear warmup over ``warmup_ratio * total_steps`` then ``scheduler`` decay.

    ``model`` may also be a list of parameter groups (each may carry its own ``lr``); ``fused``
    picks torch's fused kernel over torch's loop (the same update up to float rounding).
    """
    groups = model if isinstance(model, list) else decay_parameter_groups(model, weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[scheduler]
    lr_scheduler = get_scheduler(
        name,
        optimizer=optimizer,
        num_warmup_steps=round(warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    return optimizer, lr_scheduler


def configure_adamw(module, parameters: nn.Module | list[dict] | None = None) -> dict:
    """``configure_optimizers`` of a stage whose ``config`` is a TrainingStageConfig: AdamW with
    its warmup and decay over ``parameters`` (a model, or parameter groups that may carry their
    own ``lr``; default ``module.model``)."""
    hp = module.config
    optimizer, scheduler = adamw_with_warmup(
        module.model if parameters is None else parameters,
        lr=hp.lr,
        weight_decay=hp.weight_decay,
        betas=tuple(hp.adam_betas),
        scheduler=hp.lr_scheduler,
        warmup_ratio=hp.lr_warmup_ratio,
        total_steps=module.trainer.estimated_stepping_batches,
        fused=hp.fused_optimizer,
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
