"""Containers that cross module boundaries.

Shapes use B = batch size, L = padded sequence length, P = padded prompt length.
Masks are boolean with True = valid token, everywhere in the project.
NamedTuples are used so that Lightning moves them to the device as a whole.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class SupervisedBatch(NamedTuple):
    """Prompt + response sequences for SFT (right padded)."""

    input_ids: Tensor  # (B, L) long
    attention_mask: Tensor  # (B, L) bool, True = real token
    loss_mask: Tensor  # (B, L) bool, True = response token whose prediction is trained


class PromptBatch(NamedTuple):
    """Prompts only, left padded so that generation continues every row at the same position."""

    input_ids: Tensor  # (B, P) long
    attention_mask: Tensor  # (B, P) bool


class PreferenceBatch(NamedTuple):
    """Pairs for the reward model: the better and the worse response to the same prompt."""

    better_input_ids: Tensor  # (B, L) long, right padded
    better_attention_mask: Tensor  # (B, L) bool
    worse_input_ids: Tensor  # (B, L) long
    worse_attention_mask: Tensor  # (B, L) bool


class SafetyPreferenceBatch(NamedTuple):
    """Pairs for the cost model: the safer and the more harmful response, with safety signs.

    A sign is +1 for a response labelled unsafe and -1 for one labelled safe, matching the cost
    convention (cost > 0 means unsafe).
    """

    safer_input_ids: Tensor  # (B, L) long, right padded
    safer_attention_mask: Tensor  # (B, L) bool
    unsafer_input_ids: Tensor  # (B, L) long
    unsafer_attention_mask: Tensor  # (B, L) bool
    safer_sign: Tensor  # (B,) long in {-1, +1}; (B, K) per harm category (K cost heads)
    unsafer_sign: Tensor  # (B,) long in {-1, +1}; (B, K)
