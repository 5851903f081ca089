"""Saved folders carry what transformers 4.x / tokenizers 0.19 read (upstream safe-rlhf's stack),
and still load here to the same ids, logits and scores."""

import json

import pytest
import torch
from tokenizers import Tokenizer
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from safe_rlhf_lightning.models import ScoreModel, save_pretrained_atomic
from safe_rlhf_lightning.models.io import (
    legacy_model_config,
    legacy_tokenizer_config,
    legacy_tokenizer_json,
)
from tests.models.test_score_model import tiny_config

THETA = 500000.0  # not transformers 4.x's fallback of 10000, so a lost theta would show
TEXTS = ["How do I bake bread at home?", "unseen wörds ✓ 42\n  two  spaces", ""]


def tiny_lm(tokenizer, theta: float = THETA) -> LlamaForCausalLM:
    config = tiny_config(
        len(tokenizer), rope_parameters={"rope_type": "default", "rope_theta": theta}
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def read(folder, name: str) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def assert_older_readers_find_their_fields(folder, tokenizer) -> None:
    """What transformers 4.41 / tokenizers 0.19 look for, checked in the saved files."""
    config = read(folder, "config.json")
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == THETA
    assert "rope_scaling" not in config  # default RoPE: 4.x's None
    assert read(folder, "tokenizer_config.json")["tokenizer_class"] == "PreTrainedTokenizerFast"
    pairs = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = read(folder, "tokenizer.json")["model"]["merges"]
    assert len(pairs) > 0 and merges == [f"{a} {b}" for a, b in pairs]
    assert all(isinstance(m, str) and m.count(" ") == 1 for m in merges)


def assert_same_tokens(folder, tokenizer) -> None:
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert isinstance(reloaded, PreTrainedTokenizerFast)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.all_special_tokens == tokenizer.all_special_tokens
    assert (reloaded.bos_token_id, reloaded.eos_token_id, reloaded.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))  # the string merges parse here too
    for text in TEXTS:
        assert reloaded(text).input_ids == tokenizer(text).input_ids
        assert raw.encode(text).ids == tokenizer(text).input_ids


def test_a_saved_causal_lm_folder_reads_in_both_stacks(tmp_path, small_tokenizer):
    model = tiny_lm(small_tokenizer)
    save_pretrained_atomic(model, small_tokenizer, tmp_path / "sft")
    assert_older_readers_find_their_fields(tmp_path / "sft", small_tokenizer)
    assert_same_tokens(tmp_path / "sft", small_tokenizer)

    assert AutoConfig.from_pretrained(tmp_path / "sft").rope_parameters["rope_theta"] == THETA
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "sft").eval()
    ids = torch.tensor([small_tokenizer(TEXTS[1]).input_ids])
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
        # What a reader that lost the theta (4.x without the top-level copy) would compute.
        fallback = tiny_lm(small_tokenizer, theta=10000.0)
        fallback.load_state_dict(model.state_dict())
        assert not torch.allclose(fallback(ids).logits, model(ids).logits)


def test_a_saved_score_folder_reads_in_both_stacks(tmp_path, small_tokenizer):
    torch.manual_seed(1)
    model = ScoreModel(tiny_lm(small_tokenizer), score_type="cost").eval()
    model.save_pretrained(tmp_path / "cost", small_tokenizer)
    assert_older_readers_find_their_fields(tmp_path / "cost", small_tokenizer)
    assert_same_tokens(tmp_path / "cost", small_tokenizer)
    assert read(tmp_path / "cost", "config.json")["score_type"] == "cost"

    loaded = ScoreModel.from_pretrained(tmp_path / "cost")
    assert loaded.config.rope_parameters["rope_theta"] == THETA
    batch = small_tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = model(batch.input_ids, batch.attention_mask)
        after = loaded(batch.input_ids, batch.attention_mask)
    assert torch.equal(before.end_scores, after.end_scores)


def test_scaled_rope_is_copied_to_rope_scaling_and_reads_back_the_same(tmp_path):
    rope = {"rope_type": "linear", "rope_theta": THETA, "factor": 2.0}
    config = json.loads(LlamaConfig(rope_parameters=rope).to_json_string(use_diff=False))
    legacy = legacy_model_config(config)
    assert legacy["rope_theta"] == THETA
    assert legacy["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}
    assert config == {k: v for k, v in legacy.items() if k not in ("rope_theta", "rope_scaling")}
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    assert AutoConfig.from_pretrained(tmp_path).rope_parameters == rope


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "gpt2", "n_embd": 32},  # no RoPE at all
        {"rope_parameters": {"full_attention": {"rope_theta": 1e6, "rope_type": "default"}}},
    ],
)
def test_configs_without_a_single_theta_are_left_alone(config):
    assert legacy_model_config(config) == config


def test_tokenizer_rewrites_touch_only_what_older_readers_cannot_read():
    assert legacy_tokenizer_config({"tokenizer_class": "TokenizersBackend", "x": 1}) == {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "x": 1,
    }
    qwen = {"tokenizer_class": "Qwen2Tokenizer"}  # 4.x has it (as Qwen2TokenizerFast)
    assert legacy_tokenizer_config(qwen) == qwen

    bpe = {"model": {"type": "BPE", "merges": [["Ġ", "t"], ["h", "e"]]}}
    assert legacy_tokenizer_json(bpe)["model"]["merges"] == ["Ġ t", "h e"]
    assert bpe["model"]["merges"] == [["Ġ", "t"], ["h", "e"]]  # the input is not changed
    spaced = {"model": {"type": "BPE", "merges": [["a b", "c"]]}}  # "a b c" would be ambiguous
    assert legacy_tokenizer_json(spaced) == spaced
    word_level = {"model": {"type": "WordLevel", "vocab": {"a": 0}}}
    assert legacy_tokenizer_json(word_level) == word_level
