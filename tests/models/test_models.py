import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from safe_rlhf_lightning.models import (
    add_missing_special_tokens,
    build_tiny_causal_lm,
    generate_texts,
    load_causal_lm,
    load_tokenizer,
    save_pretrained_atomic,
    train_bpe_tokenizer,
)
from safe_rlhf_lightning.models import causal_lm as causal_lm_module


def test_bpe_tokenizer_round_trips_through_save_pretrained(small_tokenizer, tmp_path):
    small_tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "How do I bake bread? Some text the corpus never had: zebra 42 ü!"
    assert reloaded(text).input_ids == small_tokenizer(text).input_ids
    assert reloaded.decode(reloaded(text).input_ids, skip_special_tokens=True) == text
    assert reloaded.pad_token == "<pad>" and reloaded.eos_token == "</s>"
    # BOS is prepended only when special tokens are asked for.
    assert reloaded("bake").input_ids[0] == reloaded.bos_token_id
    assert reloaded("bake", add_special_tokens=False).input_ids[0] != reloaded.bos_token_id


def test_bpe_tokenizer_is_deterministic():
    corpus = ["alpha beta gamma delta", "beta gamma epsilon"] * 10
    first = train_bpe_tokenizer(corpus, vocab_size=300)
    second = train_bpe_tokenizer(corpus, vocab_size=300)
    assert first.get_vocab() == second.get_vocab()


def test_tiny_model_is_sized_to_tokenizer_and_seeded(small_tokenizer):
    model = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=3
    )
    again = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seed=3
    )
    assert model.config.vocab_size == len(small_tokenizer)
    assert model.config.pad_token_id == small_tokenizer.pad_token_id
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


def _tokenizer_without_pad():
    """A byte-level BPE with only an end-of-text token, like GPT-2's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def test_hf_model_from_local_folder_gets_a_pad_token_with_mean_embedding(tmp_path):
    tokenizer = _tokenizer_without_pad()
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2-tiny")
    tokenizer.save_pretrained(tmp_path / "gpt2-tiny")

    model = load_causal_lm(str(tmp_path / "gpt2-tiny"))
    loaded_tokenizer = load_tokenizer(str(tmp_path / "gpt2-tiny"))
    assert loaded_tokenizer.pad_token is None
    old_rows = model.get_input_embeddings().weight.detach().clone()  # (V, H)

    assert add_missing_special_tokens(loaded_tokenizer, model) == ["pad_token"]
    new_weight = model.get_input_embeddings().weight
    assert new_weight.shape[0] == old_rows.shape[0] + 1 == len(loaded_tokenizer)
    torch.testing.assert_close(new_weight[-1], old_rows.mean(dim=0))
    torch.testing.assert_close(new_weight[:-1], old_rows)
    assert model.config.pad_token_id == loaded_tokenizer.pad_token_id == old_rows.shape[0]
    # Nothing is added a second time.
    assert add_missing_special_tokens(loaded_tokenizer, model) == []


def test_trust_remote_code_is_off_by_default(monkeypatch):
    seen = {}

    def fake_from_pretrained(name, **kwargs):
        seen.update(kwargs)
        return "model"

    monkeypatch.setattr(
        causal_lm_module.AutoModelForCausalLM, "from_pretrained", fake_from_pretrained
    )
    assert load_causal_lm("some/model") == "model"
    assert seen["trust_remote_code"] is False


def test_bad_dtype_names_the_key():
    with pytest.raises(ValueError, match=r"model\.dtype"):
        load_causal_lm("some/model", dtype="float8")


def test_generate_texts_returns_only_new_text_and_restores_train_mode(small_tokenizer):
    model = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    )
    model.train()
    texts = generate_texts(
        model, small_tokenizer, ["How do I", "First, mix flour"], max_new_tokens=5
    )
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert model.training
    greedy = generate_texts(model, small_tokenizer, ["How do I"], max_new_tokens=5, do_sample=False)
    assert greedy == generate_texts(
        model, small_tokenizer, ["How do I"], max_new_tokens=5, do_sample=False
    )


def test_save_pretrained_atomic_keeps_the_old_folder_when_a_save_fails(small_tokenizer, tmp_path):
    model = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    )
    folder = save_pretrained_atomic(model, small_tokenizer, tmp_path / "model")
    assert (folder / "model.safetensors").exists()
    assert (folder / "tokenizer.json").exists()
    before = (folder / "model.safetensors").read_bytes()

    class Exploding:
        def save_pretrained(self, path, **kwargs):
            path.mkdir(parents=True)
            (path / "partial").write_text("half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_pretrained_atomic(Exploding(), None, tmp_path / "model")
    assert (folder / "model.safetensors").read_bytes() == before
    assert not (folder / "partial").exists()
