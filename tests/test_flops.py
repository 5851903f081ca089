"""The benchmark's FLOP count (benchmarks/flops.py): hand counts on a one-layer shape, and torch's
own count of the matrix products of real passes (eager attention, so that the attention products
are matrix products torch counts) for a forward, a training pass, our decoding loop and
Hugging Face's ``generate``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

_SPEC = importlib.util.spec_from_file_location(
    "benchmark_flops", Path(__file__).resolve().parents[1] / "benchmarks" / "flops.py"
)
flops = sys.modules.setdefault("benchmark_flops", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(flops)  # registered first: its dataclass looks its module up

ONE_LAYER = flops.LlamaShape(hidden=4, layers=1, heads=2, intermediate=8, vocab=10)


def test_one_layer_forward_by_hand():
    # Per token: q, k, v, o 4 x (2·4·4) = 128, MLP 3 x (2·4·8) = 192: 320.
    # 3 tokens: 960; attention 2 products x 2·3·3·4 = 144; LM head at 3 positions 3·2·4·10 = 240.
    assert flops.forward_flops(ONE_LAYER, 1, 3, 3, 3, 10) == 960 + 144 + 240
    # Two rows are twice one; a score head (1 output) at the same positions: 3·2·4·1 = 24.
    assert flops.sequence_flops(ONE_LAYER, 2, 3, 3, 1) == 2 * (960 + 144 + 24)


def test_grouped_query_attention_shrinks_only_k_and_v():
    shape = flops.LlamaShape(hidden=4, layers=1, heads=2, intermediate=8, vocab=10, kv_heads=1)
    # q, o 2 x (2·4·4) = 64; k, v 2 x (2·4·2) = 32 (one head of width 2); MLP 192.
    assert flops.forward_flops(shape, 1, 1, 1, 0, 10) == 64 + 32 + 192 + 2 * 2 * 1 * 1 * 4


def test_generation_by_hand():
    # Prompt of 3: 3·320 + 144 + LM head at one position 2·4·10 = 80: 1184.
    # Token 2 from a 1-token step attending to 4 positions: 320 + 2·2·4·4 + 80 = 464;
    # token 3 attending to 5: 320 + 80 + 80 = 480.
    assert flops.generation_flops(ONE_LAYER, 2, 3, 3) == 2 * (1184 + 464 + 480)


def _eager_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=24,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    shape = flops.LlamaShape(hidden=16, layers=2, heads=4, intermediate=24, vocab=50, kv_heads=2)
    ids = torch.randint(3, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding: counted like any position
    return LlamaForCausalLM(config), shape, ids, mask


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_forward_and_training_match_torchs_count():
    model, shape, ids, mask = _eager_llama()
    forward = lambda: model(input_ids=ids, attention_mask=mask, logits_to_keep=4)  # noqa: E731
    assert _counted(forward) == flops.forward_flops(shape, 3, 7, 7, 4, 50)
    assert _counted(lambda: forward().logits.sum().backward()) == (
        flops.TRAIN_FACTOR * flops.forward_flops(shape, 3, 7, 7, 4, 50)
    )


@pytest.mark.parametrize("loop", ["ours", "generate"])
def test_generation_matches_torchs_count_of_both_decoding_loops(loop):
    from safe_rlhf_lightning.models import decode

    model, shape, ids, mask = _eager_llama()
    model.eval()
    with torch.no_grad():
        if loop == "ours":  # an EOS id that never comes: all 5 tokens are made
            run = lambda: decode(  # noqa: E731
                model, ids, mask, max_new_tokens=5, eos_token_id=10**6, pad_token_id=0
            )
        else:
            run = lambda: model.generate(  # noqa: E731
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=5,
                min_new_tokens=5,
                do_sample=False,
                pad_token_id=0,
            )
        # No pass after the last token: its logits would go unused.
        assert _counted(run) == flops.generation_flops(shape, 3, 7, 5)


def test_step_counts_add_up_from_their_passes():
    shape, rows, prompt, response = ONE_LAYER, 4, 3, 2
    length = prompt + response
    logprobs = flops.sequence_flops(shape, rows, length, response + 1, shape.vocab)
    score = flops.sequence_flops(shape, rows, length, length, 1)
    gae = flops.ours_step_flops(shape, rows, prompt, response, epochs=2, critics=2)
    grpo = flops.ours_step_flops(shape, rows, prompt, response, epochs=2, critics=0)
    # Reference, R and C in both; the critics' two passes, and their training, only with GAE.
    assert grpo["scoring"] == logprobs + 2 * score
    assert gae["scoring"] - grpo["scoring"] == 2 * score
    assert grpo["updates"] == 2 * 3 * logprobs
    assert gae["updates"] - grpo["updates"] == 2 * 3 * 2 * score
    with_pass = flops.ours_step_flops(
        shape, rows, prompt, response, epochs=2, critics=0, logprobs_pass=True
    )
    assert with_pass["scoring"] - grpo["scoring"] == logprobs
    assert gae["generation"] == flops.generation_flops(shape, rows, prompt, response)
    # TRL's PPO keeps the logits of every position in its policy and reference passes.
    trl = flops.trl_ppo_step_flops(shape, rows, prompt, response, epochs=1)
    full = flops.sequence_flops(shape, rows, length, length, shape.vocab)
    assert trl["scoring"] == full + 2 * score and trl["updates"] == 3 * (full + score)
