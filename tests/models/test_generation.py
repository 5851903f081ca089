"""The KV-cached decoding loop against Hugging Face's generate and a cache-free reference."""

from __future__ import annotations

import pytest
import torch

from safe_rlhf_lightning.models import build_tiny_causal_lm, decode, sample_from_logits
from safe_rlhf_lightning.rollout import position_ids
from tests.conftest import TEST_MODEL_SIZE

PROMPTS = ["USER: How do I bake bread? ASSISTANT:", "USER: Hi ASSISTANT:", "Knead the dough"]


@pytest.fixture(scope="module")
def model_and_prompts(small_tokenizer):
    model = build_tiny_causal_lm(small_tokenizer, seed=3, **TEST_MODEL_SIZE).eval()
    encoded = small_tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    assert encoded["attention_mask"][1, 0] == 0  # rows really are left padded
    return model, encoded["input_ids"], encoded["attention_mask"]


def test_inverse_transform_sampling_draws_the_softmax_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0])
    logits = probs.log().expand(40_000, -1)  # the last token has logit -inf
    draws = sample_from_logits(logits, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=5).double() / len(draws)
    # 4 standard deviations of a binomial share with n = 40,000 is at most 0.01.
    assert torch.allclose(frequencies, probs.double(), atol=0.01)
    assert frequencies[4] == 0


def test_greedy_decoding_equals_generate(model_and_prompts, small_tokenizer):
    model, ids, mask = model_and_prompts
    pad, eos = small_tokenizer.pad_token_id, small_tokenizer.eos_token_id
    ours = decode(
        model, ids, mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=pad, do_sample=False
    )
    theirs = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=12,
        eos_token_id=eos,
        pad_token_id=pad,
    )[:, ids.shape[1] :]
    assert torch.equal(ours, theirs)


def test_sampling_with_the_cache_equals_sampling_without_it(model_and_prompts, small_tokenizer):
    """Same seed, same draws: a reference that runs the whole sequence every step picks the same
    tokens, so the cache, positions and masks of the loop change nothing."""
    model, ids, mask = model_and_prompts
    torch.manual_seed(11)
    ours = decode(
        model, ids, mask, max_new_tokens=10, eos_token_id=-1, pad_token_id=0, temperature=0.7
    )
    torch.manual_seed(11)
    sequence, full_mask, reference = ids, mask.long(), []
    for _ in range(10):
        logits = model(
            input_ids=sequence, attention_mask=full_mask, position_ids=position_ids(full_mask)
        ).logits[:, -1]
        token = sample_from_logits(logits / 0.7)
        reference.append(token)
        sequence = torch.cat([sequence, token[:, None]], dim=1)
        full_mask = torch.cat([full_mask, torch.ones_like(token[:, None])], dim=1)
    assert torch.equal(ours, torch.stack(reference, dim=1))


def test_rows_hold_pad_after_eos_and_decoding_stops_when_all_ended(model_and_prompts):
    model, ids, mask = model_and_prompts
    torch.manual_seed(5)
    free = decode(model, ids, mask, max_new_tokens=8, eos_token_id=-1, pad_token_id=0)
    # Make a token that row 0 first samples after step 0 the EOS; with the same seed the draws
    # are the same up to there.
    step = next(t for t in range(1, 8) if free[0, t] not in free[0, :t])
    eos = int(free[0, step])
    torch.manual_seed(5)
    ended = decode(model, ids, mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
    first_eos = [int((row == eos).nonzero()[0, 0]) if (row == eos).any() else None for row in ended]
    assert first_eos[0] == step
    assert torch.equal(ended[0, : step + 1], free[0, : step + 1])
    for row, stop in zip(ended, first_eos, strict=True):
        if stop is not None:
            assert (row[stop + 1 :] == 0).all()
    if all(stop is not None for stop in first_eos):
        assert ended.shape[1] == max(first_eos) + 1  # stopped early


def test_top_p_keeps_only_the_nucleus(model_and_prompts):
    model, ids, mask = model_and_prompts
    greedy = decode(
        model, ids, mask, max_new_tokens=8, eos_token_id=-1, pad_token_id=0, do_sample=False
    )
    nucleus = decode(
        model, ids, mask, max_new_tokens=8, eos_token_id=-1, pad_token_id=0, top_p=1e-6
    )
    assert torch.equal(nucleus, greedy)


def test_logprobs_from_decoding_match_a_separate_forward_pass(model_and_prompts, small_tokenizer):
    """The old log-probs the PPO stage can take from sampling (raw logits, not tempered) equal
    those of ``response_logprobs`` over the finished sequences, up to float rounding."""
    from safe_rlhf_lightning.rollout import SamplingOptions, response_logprobs, sample
    from safe_rlhf_lightning.types import PromptBatch

    model, ids, mask = model_and_prompts
    options = SamplingOptions(max_new_tokens=10, temperature=0.7, num_return_sequences=2)
    torch.manual_seed(5)
    full_ids, full_mask, response_mask, logprobs = sample(
        model,
        PromptBatch(ids, mask.bool()),
        options,
        eos_token_id=small_tokenizer.eos_token_id,
        pad_token_id=small_tokenizer.pad_token_id,
        return_logprobs=True,
    )
    torch.manual_seed(5)
    same_ids, *_ = sample(
        model,
        PromptBatch(ids, mask.bool()),
        options,
        eos_token_id=small_tokenizer.eos_token_id,
        pad_token_id=small_tokenizer.pad_token_id,
    )
    assert torch.equal(full_ids, same_ids)  # asking for log-probs changes no draw
    with torch.no_grad():
        reference = response_logprobs(model, full_ids, full_mask, ids.shape[1])
    assert logprobs.shape == reference.shape
    torch.testing.assert_close(
        logprobs[response_mask], reference[response_mask], atol=1e-5, rtol=1e-5
    )
    assert bool((logprobs[response_mask] < 0).all())


def test_preallocated_cache_layer_holds_what_concatenation_holds():
    """Written in place, handed out as views of one buffer; past its capacity it concatenates."""
    from transformers.cache_utils import DynamicLayer

    from safe_rlhf_lightning.models.generation import PreallocatedLayer

    ours, reference = PreallocatedLayer(capacity=6), DynamicLayer()
    generator = torch.Generator().manual_seed(0)
    pointers = set()
    for length in (4, 1, 1, 1):  # the prompt, then one position per step: 7 > capacity 6
        keys = torch.randn(2, 3, length, 5, generator=generator)
        values = torch.randn(2, 3, length, 5, generator=generator)
        got, want = ours.update(keys, values), reference.update(keys, values)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert ours.get_seq_length() == reference.get_seq_length()
        pointers.add(got[0].data_ptr())
    assert len(pointers) == 2  # one buffer for the first 6 positions, a new tensor for the 7th


def test_decoding_with_the_preallocated_cache_equals_the_concatenating_cache(
    model_and_prompts, monkeypatch
):
    model, ids, mask = model_and_prompts
    ours, plain = _decode_with_and_without_preallocation(
        model, ids, mask, monkeypatch, seed=5, max_new_tokens=10, temperature=0.7
    )
    assert torch.equal(ours[0], plain[0]) and torch.equal(ours[1], plain[1])


@pytest.mark.parametrize("family", ["gpt2", "qwen2"])
def test_preallocated_cache_in_other_model_families(family, monkeypatch):
    """GPT-2 (learned positions, fused QKV) and Qwen2 (grouped KV heads): the same draws."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    from safe_rlhf_lightning.models import generation

    torch.manual_seed(0)
    if family == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=2))
    else:
        model = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=50,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
            )
        )
    model.eval()
    layers = generation.preallocated_cache(model, 14).layers
    assert len(layers) == 2 and all(isinstance(x, generation.PreallocatedLayer) for x in layers)
    ids = torch.randint(3, 50, (3, 6))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, :2] = False  # one left-padded row
    ours, plain = _decode_with_and_without_preallocation(
        model, ids, mask, monkeypatch, seed=1, max_new_tokens=8
    )
    assert torch.equal(ours[0], plain[0]) and torch.equal(ours[1], plain[1])


def _decode_with_and_without_preallocation(model, ids, mask, monkeypatch, seed, **options):
    """(tokens, log-probs) sampled with the same seed twice: with the preallocated cache, then
    with transformers' own concatenating one."""
    from transformers import DynamicCache

    from safe_rlhf_lightning.models import generation

    options = dict(eos_token_id=-1, pad_token_id=0, return_logprobs=True, **options)
    torch.manual_seed(seed)
    ours = decode(model, ids, mask, **options)
    monkeypatch.setattr(
        generation, "preallocated_cache", lambda model, capacity: DynamicCache(config=model.config)
    )
    torch.manual_seed(seed)
    return ours, decode(model, ids, mask, **options)
