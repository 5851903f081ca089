"""LoRA adapters through PEFT, injected in place so that a model keeps its type.

PEFT's ``inject_adapter_in_model`` replaces each targeted ``nn.Linear`` by a LoRA layer holding
the original layer (``<name>.base_layer``) and the adapters (``<name>.lora_A.default``,
``<name>.lora_B.default``), and freezes every other parameter of the model. The model stays a
``LlamaForCausalLM`` (or a score model's ``LlamaModel``), so stages, rollouts and Lightning
checkpoints treat it like any other; only its state-dict keys change. ``merge_lora`` folds the
adapters back into the weights and removes the LoRA layers, giving a plain model to save.

peft is imported only when adapters are added: it costs seconds of import time.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

from torch import nn

ALL_LINEAR = "all-linear"


class LoraTargetError(ValueError):
    """``target_modules`` matches no layer of the model."""


class LoraSettings(NamedTuple):
    """PEFT's ``r``, ``lora_alpha``, ``lora_dropout`` and ``target_modules`` (the options are
    documented on ``config.LoraConfig``). ``(ALL_LINEAR,)`` targets every linear layer but the
    output head."""

    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


def add_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Inject freshly initialised adapters into ``model`` in place (B = 0: the model's outputs
    are unchanged) and freeze everything else in it; returns ``model``.

    Raises :class:`LoraTargetError`, naming the model's linear layers, when ``target_modules``
    matches none.
    """
    from peft import LoraConfig, NoMatchingPeftModuleError, inject_adapter_in_model

    targets = settings.target_modules
    config = LoraConfig(  # a new config each time: PEFT expands "all-linear" into it in place
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=ALL_LINEAR if tuple(targets) == (ALL_LINEAR,) else list(targets),
        bias="none",
    )
    try:
        inject_adapter_in_model(config, model)
    except NoMatchingPeftModuleError as error:
        names = (name for name, m in model.named_modules() if isinstance(m, nn.Linear))
        linear = sorted({name.rpartition(".")[2] for name in names})
        raise LoraTargetError(
            f"LoRA target_modules {list(targets)} match no layer of {type(model).__name__} "
            f"({error}); its linear layers are {linear}, or use [{ALL_LINEAR}]"
        ) from None
    return model


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, layer) pairs of the LoRA layers in ``model``; none when peft was never used."""
    if "peft" not in sys.modules:  # no adapter can exist without peft having been imported
        return []
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, BaseTunerLayer)]


def has_lora(model: nn.Module) -> bool:
    return bool(lora_layers(model))


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into the weight it adapts (W + (alpha / r)·B·A) and put the original
    layers back in place of the LoRA layers; returns ``model``, now with its original state-dict
    keys and the same outputs. A model without adapters is returned unchanged.

    The merged weights keep ``requires_grad=False``: merging is for saving, not for more training.
    """
    layers = lora_layers(model)
    for name, layer in layers:
        layer.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer.get_base_layer())
    if layers:
        for module in model.modules():
            if "peft_config" in vars(module):  # the record PEFT leaves on the adapted model
                del module.peft_config
    return model
