"""Linear merging of two models of one architecture, as P-SACPO does.

SACPO (Wachi et al. 2024, "Stepwise Alignment for Constrained Language Model Policy
Optimization") aligns a policy for helpfulness and then for safety, each step a DPO-family stage.
Its practical variant P-SACPO instead averages the weights of a helpfulness-aligned and a
safety-aligned model, so that one weight w trades helpfulness against harmlessness without
training again. The merge stage loads both state dicts, calls ``merge_state_dicts`` and saves the
result like any other model folder.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


def _first_mismatch(first: Mapping[str, Tensor], second: Mapping[str, Tensor]) -> str | None:
    """A sentence naming the first key (in ``first``'s order) whose presence, shape or dtype
    differs between the two state dicts, or None when they match."""
    for key in first:
        if key not in second:
            return f"key {key!r} is in the first state dict only"
    for key in second:
        if key not in first:
            return f"key {key!r} is in the second state dict only"
    for key, a in first.items():
        b = second[key]
        if a.shape != b.shape:
            return f"key {key!r} has shapes {tuple(a.shape)} and {tuple(b.shape)}"
        if a.dtype != b.dtype:
            return f"key {key!r} has dtypes {a.dtype} and {b.dtype}"
    return None


def merge_state_dicts(
    first: Mapping[str, Tensor], second: Mapping[str, Tensor], *, weight: float
) -> dict[str, Tensor]:
    """The weighted average ``(1 - w)·A + w·B`` of two state dicts, tensor by tensor.

    Floating tensors are interpolated in at least float32 and cast back to their own dtype (a
    bfloat16 model stays bfloat16). ``torch.lerp`` computes from the nearer end, so w = 0 gives
    A's values and w = 1 gives B's exactly. Other tensors (integer buffers such as step counters)
    are not weights to average: they must be equal in both and are copied.

    Args:
        first, second: state dicts A and B, same keys, shapes and dtypes.
        weight: w in [0, 1], the share of ``second``.

    Returns:
        A new dict in ``first``'s key order; the inputs are left untouched.

    Raises ValueError when w is outside [0, 1], when the keys, shapes or dtypes differ (naming
    the first mismatching key) or when a non-floating tensor differs.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}.")
    mismatch = _first_mismatch(first, second)
    if mismatch is not None:
        raise ValueError(f"Cannot merge state dicts: {mismatch}.")
    merged = {}
    with torch.no_grad():  # parameters may be passed directly; the merge is not trained
        for key, a in first.items():
            b = second[key]
            if a.is_floating_point():
                compute = torch.promote_types(a.dtype, torch.float32)
                merged[key] = torch.lerp(a.to(compute), b.to(compute), weight).to(a.dtype)
            elif torch.equal(a, b):
                merged[key] = a.clone()
            else:
                raise ValueError(f"Cannot merge state dicts: non-floating {key!r} differs.")
    return merged
