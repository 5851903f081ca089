"""P-SACPO's weight merge: exact ends, float64 average, dtypes kept, clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from safe_rlhf_lightning.functional import merge_state_dicts


def two_state_dicts(dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def state():
        return {
            "embed.weight": torch.randn(5, 3, generator=g).to(dtype),
            "head.bias": torch.randn(4, generator=g).to(dtype),
            "steps": torch.tensor(7),
        }

    return state(), state()


def test_merge_by_hand():
    a = {"w": torch.tensor([0.0, 2.0, -4.0])}
    b = {"w": torch.tensor([4.0, 2.0, 4.0])}
    torch.testing.assert_close(
        merge_state_dicts(a, b, weight=0.25)["w"], torch.tensor([1, 2, -2.0])
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_weight_zero_and_one_give_the_ends_exactly(dtype):
    a, b = two_state_dicts(dtype)
    at_zero = merge_state_dicts(a, b, weight=0.0)
    at_one = merge_state_dicts(a, b, weight=1.0)
    for key in a:
        assert torch.equal(at_zero[key], a[key]) and at_zero[key].dtype == a[key].dtype
        assert torch.equal(at_one[key], b[key]) and at_one[key].dtype == b[key].dtype


@pytest.mark.parametrize("weight", [0.1, 0.5, 0.7])
def test_merge_matches_a_float64_loop(weight):
    a, b = two_state_dicts(torch.float64, seed=1)
    merged = merge_state_dicts(a, b, weight=weight)
    for key in ("embed.weight", "head.bias"):
        flat_a, flat_b = a[key].flatten().tolist(), b[key].flatten().tolist()
        expected = [(1 - weight) * x + weight * y for x, y in zip(flat_a, flat_b, strict=True)]
        for got, want in zip(merged[key].flatten().tolist(), expected, strict=True):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert torch.equal(merged["steps"], a["steps"])


def test_bfloat16_stays_bfloat16_within_its_rounding_of_the_exact_average():
    a, b = two_state_dicts(torch.bfloat16, seed=2)
    merged = merge_state_dicts(a, b, weight=0.3)
    for key in ("embed.weight", "head.bias"):
        assert merged[key].dtype == torch.bfloat16
        exact = 0.7 * a[key].double() + 0.3 * b[key].double()
        # bfloat16 keeps 8 significant bits: one rounding is at most 2^-9 relative
        torch.testing.assert_close(merged[key].double(), exact, rtol=2**-8, atol=1e-12)


def test_inputs_are_left_alone_and_results_do_not_alias_them():
    a, b = two_state_dicts()
    before = {key: value.clone() for key, value in a.items()}
    merged = merge_state_dicts(a, b, weight=0.0)
    for value in merged.values():
        value.add_(1)
    for key in a:
        assert torch.equal(a[key], before[key])


def test_merged_module_state_loads_and_keeps_parameters_out_of_autograd():
    torch.manual_seed(0)
    model_a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model_b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    merged = merge_state_dicts(
        dict(model_a.named_parameters()), dict(model_b.named_parameters()), weight=0.5
    )
    assert not any(value.requires_grad for value in merged.values())
    full = merge_state_dicts(model_a.state_dict(), model_b.state_dict(), weight=0.5)
    target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target.load_state_dict(full)
    torch.testing.assert_close(target[0].weight, (model_a[0].weight + model_b[0].weight) / 2)


def test_missing_key_is_named():
    a, b = two_state_dicts()
    del b["head.bias"]
    with pytest.raises(ValueError, match=r"'head\.bias' is in the first state dict only"):
        merge_state_dicts(a, b, weight=0.5)
    b["extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"'head\.bias' is in the first"):  # the first mismatch
        merge_state_dicts(a, b, weight=0.5)
    with pytest.raises(ValueError, match="'extra' is in the first"):
        merge_state_dicts(b, a, weight=0.5)


def test_shape_and_dtype_mismatches_are_named():
    a, b = two_state_dicts()
    b["embed.weight"] = torch.zeros(3, 5)
    with pytest.raises(ValueError, match=r"'embed\.weight' has shapes \(5, 3\) and \(3, 5\)"):
        merge_state_dicts(a, b, weight=0.5)
    a, b = two_state_dicts()
    b["head.bias"] = b["head.bias"].double()
    with pytest.raises(
        ValueError, match=r"'head\.bias' has dtypes torch\.float32 and torch\.float64"
    ):
        merge_state_dicts(a, b, weight=0.5)


def test_differing_integer_buffer_and_bad_weight_raise():
    a, b = two_state_dicts()
    b["steps"] = torch.tensor(8)
    with pytest.raises(ValueError, match="non-floating 'steps' differs"):
        merge_state_dicts(a, b, weight=0.5)
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"weight must be in \[0, 1\]"):
            merge_state_dicts(a, a, weight=weight)
