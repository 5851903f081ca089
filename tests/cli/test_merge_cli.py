"""``safe-rlhf-merge`` (P-SACPO): w = 0 and w = 1 give the two folders back, w = 0.5 their mean,
and a folder of another size is one line on stderr."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM

from safe_rlhf_lightning.cli.merge import main
from safe_rlhf_lightning.models import build_tiny_causal_lm, save_pretrained_atomic

SIZE = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="module")
def two_policies(tmp_path_factory, small_tokenizer):
    root = tmp_path_factory.mktemp("policies")
    for seed, name in ((0, "helpful"), (1, "safe")):
        save_pretrained_atomic(
            build_tiny_causal_lm(small_tokenizer, seed=seed, **SIZE), small_tokenizer, root / name
        )
    return root


def _weights(folder):
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_merge_gives_the_weighted_mean_of_the_two_folders(two_policies, tmp_path, weight):
    output = tmp_path / "merged"
    first, second = two_policies / "helpful", two_policies / "safe"
    args = [str(first), str(second), "--weight", str(weight), "--output", str(output)]
    assert main(args) == 0
    merged, a, b = _weights(output), _weights(first), _weights(second)
    assert (output / "tokenizer_config.json").exists()
    for key, value in merged.items():
        expected = {0.0: a[key], 1.0: b[key]}.get(weight, (a[key] + b[key]) / 2)
        atol = 0 if weight in (0.0, 1.0) else 1e-6
        torch.testing.assert_close(value, expected, rtol=0, atol=atol)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the two inputs differ


def test_merge_of_another_size_is_one_line_on_stderr(
    two_policies, tmp_path, small_tokenizer, capsys
):
    other = tmp_path / "wide"
    wide = {**SIZE, "hidden_size": 64}
    save_pretrained_atomic(
        build_tiny_causal_lm(small_tokenizer, seed=0, **wide), small_tokenizer, other
    )
    args = [
        str(two_policies / "helpful"),
        str(other),
        "--weight",
        "0.5",
        "--output",
        str(tmp_path / "m"),
    ]
    capsys.readouterr()  # drop the progress bars of the folders written above
    assert main(args) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after transformers' loading bars
    assert last.startswith("safe-rlhf-merge: error: ") and re.search(
        r"shapes \(\d+, 32\) and \(\d+, 64\)", last
    )
    assert not (tmp_path / "m").exists()
