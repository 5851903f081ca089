"""What a stage does to a model it trains (never to a frozen one): LoRA adapters and activation
checkpointing, both in place, both on the transformer only.

A score model's adapters and checkpointing go into its backbone (``model.model``); its score
head stays outside them and is trained in full.
"""

from __future__ import annotations

from torch import nn

from .lora import LoraSettings, add_lora
from .score_model import ScoreModel


def prepare_trainable(
    model: nn.Module, *, gradient_checkpointing: bool = False, lora: LoraSettings | None = None
) -> nn.Module:
    """Add LoRA adapters (``lora``) and turn on activation checkpointing in ``model``, a causal
    LM or a :class:`ScoreModel`; returns ``model``."""
    transformer = model.model if isinstance(model, ScoreModel) else model
    if lora is not None:
        add_lora(transformer, lora)
    if gradient_checkpointing:
        enable_activation_checkpointing(transformer)
    return model


def enable_activation_checkpointing(model: nn.Module) -> None:
    """Hugging Face's checkpointing of each decoder layer, non-reentrant (torch's recommended
    variant: it works with frozen inputs, e.g. under LoRA, and keeps the RNG state for dropout).

    It only acts in training mode with gradients on: sampling under ``no_grad`` (and scoring in
    eval mode) runs the layers as before, KV cache included.
    """
    options = {"use_reentrant": False}
    # The name in transformers 5.24 (the old one warns); older versions have only the old one.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
