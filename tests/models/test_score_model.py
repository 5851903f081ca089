import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaModel,
)

from safe_rlhf_lightning.models import (
    ExponentialMovingAverage,
    IdentityNormalizer,
    RunningMeanStd,
    ScoreModel,
    build_normalizer,
)

VOCAB = 64
UPSTREAM_FIELDS = ("score_dim", "score_type", "score_bias", "do_normalize", "normalizer_type")


def tiny_config(vocab_size: int = VOCAB, num_hidden_layers: int = 2, **kwargs) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        **kwargs,
    )


def tiny_score_model(seed: int = 0, vocab_size: int = VOCAB, **kwargs) -> ScoreModel:
    torch.manual_seed(seed)
    return ScoreModel(LlamaModel(tiny_config(vocab_size)), **kwargs)


def pad(sequences: list[list[int]], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) ids padded with 0 and the bool mask, padding on ``side``."""
    length = max(map(len, sequences))
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.bool)
    for row, sequence in enumerate(sequences):
        span = slice(0, len(sequence)) if side == "right" else slice(length - len(sequence), None)
        ids[row, span] = torch.tensor(sequence)
        mask[row, span] = True
    return ids, mask


SEQUENCES = [[5, 9, 13, 2, 7], [3, 4, 8], [11, 12, 6, 10, 14, 15, 16]]


def test_end_scores_do_not_depend_on_the_padding_side():
    model = tiny_score_model(score_dim=2).eval()
    with torch.no_grad():
        right = model(*pad(SEQUENCES, "right"))
        left = model(*pad(SEQUENCES, "left"))
        alone = [
            model(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.bool)) for s in SEQUENCES
        ]
    lengths = torch.tensor([len(s) for s in SEQUENCES])
    assert right.end_index.tolist() == (lengths - 1).tolist()
    assert left.end_index.tolist() == [6, 6, 6]
    assert right.end_scores.shape == (3, 2) and right.scores.shape == (3, 7, 2)
    torch.testing.assert_close(left.end_scores, right.end_scores, rtol=0, atol=1e-5)
    for row, (sequence, single) in enumerate(zip(SEQUENCES, alone, strict=True)):
        n = len(sequence)
        torch.testing.assert_close(right.scores[row, :n], left.scores[row, -n:], rtol=0, atol=1e-5)
        torch.testing.assert_close(right.scores[row, :n], single.scores[0], rtol=0, atol=1e-5)


def test_save_and_load_give_bit_identical_scores_and_upstream_names(tmp_path, small_tokenizer):
    model = tiny_score_model(
        vocab_size=len(small_tokenizer),
        score_type="cost",
        do_normalize=True,
        normalizer_type="RunningMeanStd",
    )
    ids, mask = pad(SEQUENCES, "right")
    model.train()
    with torch.no_grad():
        model(ids, mask)
        model(ids[:2], mask[:2])  # statistics from 5 end scores
    model.eval()
    with torch.no_grad():
        before = model(ids, mask)
    folder = tmp_path / "cost_model"
    model.save_pretrained(folder, small_tokenizer)
    model.save_pretrained(folder, small_tokenizer)  # overwriting a folder is atomic too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cost_model"]

    loaded = ScoreModel.from_pretrained(folder)
    assert not loaded.training
    with torch.no_grad():
        after = loaded(ids, mask)
    assert torch.equal(before.scores, after.scores)
    assert torch.equal(before.end_scores, after.end_scores)
    for name in ("mean", "var", "count"):
        assert torch.equal(getattr(model.normalizer, name), getattr(loaded.normalizer, name))
    assert loaded.normalizer.count.item() == 5
    assert isinstance(loaded.normalizer, RunningMeanStd) and loaded.score_type == "cost"

    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForScore"] and config["model_type"] == "llama"
    assert {k: config[k] for k in UPSTREAM_FIELDS} == {
        "score_dim": 1,
        "score_type": "cost",
        "score_bias": True,
        "do_normalize": True,
        "normalizer_type": "RunningMeanStd",
    }
    assert config["bias"] is True  # older upstream versions read this key
    assert config["mean"] == model.normalizer.mean.tolist()
    with safe_open(folder / "model.safetensors", framework="pt") as weights:
        keys = set(weights.keys())
    assert {"score_head.weight", "score_head.bias", "normalizer.mean", "normalizer.var"} <= keys
    assert {"normalizer.count", "model.embed_tokens.weight", "model.norm.weight"} <= keys
    assert "model.layers.1.self_attn.q_proj.weight" in keys
    assert all(k.startswith(("model.", "score_head.", "normalizer.")) for k in keys)
    # The backbone config alone still builds a plain LlamaModel (how upstream rebuilds it too).
    assert type(AutoModel.from_config(AutoConfig.from_pretrained(folder))) is LlamaModel
    assert AutoTokenizer.from_pretrained(folder).get_vocab() == small_tokenizer.get_vocab()


def write_upstream_folder(folder, fmt: str, *, drop=(), extra=None) -> dict[str, torch.Tensor]:
    """A folder as upstream safe-rlhf writes it (older ``bias`` key), from plain torch modules."""
    config = tiny_config()
    raw = json.loads(config.to_json_string(use_diff=False))
    raw.update(
        architectures=["LlamaForScore"],
        score_dim=1,
        score_type="reward",
        bias=True,
        do_normalize=True,
        normalizer_type="ExponentialMovingAverage",
        momentum=0.9,
        mean=[9.0],  # upstream's config copy of the statistics; the weights file wins
        var=[9.0],
    )
    torch.manual_seed(1)
    backbone, head = LlamaModel(config), nn.Linear(32, 1, bias=True)
    nn.init.uniform_(head.bias, 1.0, 2.0)
    state = {f"model.{k}": v for k, v in backbone.state_dict().items()}
    state |= {"score_head.weight": head.weight.detach(), "score_head.bias": head.bias.detach()}
    state |= {
        "normalizer.mean": torch.tensor([0.5]),
        "normalizer.var": torch.tensor([4.0]),
        "normalizer.count": torch.tensor([10]),
        # Older transformers versions saved this non-persistent buffer; it must be ignored.
        "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(4),
    }
    state = {k: v for k, v in state.items() if k not in drop} | (extra or {})
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(raw))
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    else:  # a sharded pickled checkpoint like beaver-7b-v1.0's
        keys = sorted(state)
        shards = {
            "pytorch_model-00001-of-00002.bin": keys[::2],
            "pytorch_model-00002-of-00002.bin": keys[1::2],
        }
        for name, shard_keys in shards.items():
            torch.save({k: state[k] for k in shard_keys}, folder / name)
        weight_map = {k: name for name, shard_keys in shards.items() for k in shard_keys}
        index = {"metadata": {}, "weight_map": weight_map}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    return {"backbone": backbone, "head": head}


@pytest.mark.parametrize("fmt", ["safetensors", "sharded_bin"])
def test_upstream_layout_folder_scores_like_its_tensors_by_hand(tmp_path, fmt):
    parts = write_upstream_folder(tmp_path / "beaver", fmt)
    model = ScoreModel.from_pretrained(tmp_path / "beaver")
    assert model.score_bias and isinstance(model.normalizer, ExponentialMovingAverage)
    assert model.normalizer.momentum == 0.9 and model.normalizer.count.item() == 10

    ids, mask = pad(SEQUENCES, "right")
    lengths = torch.tensor([len(s) for s in SEQUENCES])
    with torch.no_grad():
        got = model(ids, mask).end_scores
        hidden = parts["backbone"].eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        raw = parts["head"](hidden[torch.arange(3), lengths - 1])  # (3, 1)
    torch.testing.assert_close(got, (raw - 0.5) / (2.0 + 1e-8), rtol=1e-6, atol=1e-6)

    as_cost = ScoreModel.from_pretrained(tmp_path / "beaver", score_type="cost", retype=True)
    with torch.no_grad():
        torch.testing.assert_close(as_cost(ids, mask).end_scores, raw / 2.0, rtol=1e-6, atol=1e-6)


def test_mismatched_weights_name_the_missing_and_unexpected_keys(tmp_path):
    write_upstream_folder(
        tmp_path / "bad",
        "safetensors",
        drop={"score_head.bias"},
        extra={"value_head.weight": torch.zeros(1, 32)},
    )
    with pytest.raises(ValueError, match=r"missing keys \[score_head.bias\].*value_head.weight"):
        ScoreModel.from_pretrained(tmp_path / "bad")


def test_missing_statistics_fall_back_to_the_config_copy(tmp_path):
    write_upstream_folder(
        tmp_path / "old", "safetensors", drop={"normalizer.mean", "normalizer.var"}
    )
    model = ScoreModel.from_pretrained(tmp_path / "old")
    assert model.normalizer.mean.tolist() == [9.0] and model.normalizer.var.tolist() == [9.0]


def test_starting_from_a_causal_lm_folder_keeps_its_transformer_weights(tmp_path):
    torch.manual_seed(2)
    lm = LlamaForCausalLM(tiny_config(tie_word_embeddings=False))
    lm.save_pretrained(tmp_path / "sft")
    with pytest.raises(ValueError, match="score_type"):
        ScoreModel.from_pretrained(tmp_path / "sft")

    model = ScoreModel.from_pretrained(
        tmp_path / "sft", score_type="cost", normalizer_type="RunningMeanStd"
    )
    expected = lm.model.state_dict()
    got = model.model.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert not any(k.startswith("lm_head") for k in model.state_dict())
    assert model.score_type == "cost" and model.normalizer.normalize_function == "scale"
    assert torch.equal(model.score_head.bias, torch.zeros(1))
    assert 0 < model.score_head.weight.std().item() < 0.1  # N(0, initializer_range=0.02)


def test_a_model_with_a_head_is_accepted_as_backbone():
    torch.manual_seed(0)
    lm = LlamaForCausalLM(tiny_config())
    model = ScoreModel(lm, score_type="critic")
    assert model.model is lm.model
    assert "model.embed_tokens.weight" in model.state_dict()


def test_running_mean_std_equals_the_statistics_of_all_data_seen():
    normalizer = RunningMeanStd("affine", score_dim=3).double()
    generator = torch.Generator().manual_seed(0)
    seen = []
    for size in (5, 1, 17, 8):
        batch = torch.randn(size, 3, generator=generator, dtype=torch.float64) * 3 + 2
        normalizer.update(batch)
        seen.append(batch)
        everything = torch.cat(seen)
        torch.testing.assert_close(normalizer.mean, everything.mean(dim=0), rtol=1e-12, atol=1e-12)
        expected_var = everything.var(dim=0, correction=0)
        torch.testing.assert_close(normalizer.var, expected_var, rtol=1e-12, atol=1e-12)
        assert normalizer.count.item() == len(everything)


def test_exponential_moving_average_by_hand():
    normalizer = ExponentialMovingAverage("affine", score_dim=1, momentum=0.8)
    first, second = torch.tensor([[1.0], [3.0]]), torch.tensor([[10.0], [20.0], [30.0]])
    normalizer.update(first)  # batch mean 2, unbiased var 2
    assert normalizer.mean.item() == pytest.approx(0.8 * 0 + 0.2 * 2)
    assert normalizer.var.item() == pytest.approx(0.8 * 1 + 0.2 * 2)
    normalizer.update(second)  # batch mean 20, unbiased var 100
    assert normalizer.mean.item() == pytest.approx(0.8 * 0.4 + 0.2 * 20)
    assert normalizer.var.item() == pytest.approx(0.8 * 1.2 + 0.2 * 100)
    assert normalizer.count.item() == 5


def test_normalize_functions_reward_cost_critic():
    x = torch.tensor([[-3.0], [-0.5], [0.5], [8.0]])
    reward, cost, critic = (
        build_normalizer("RunningMeanStd", function) for function in ("affine", "scale", "identity")
    )
    for normalizer in (reward, cost, critic):
        normalizer.set_mean_var([5.0], [4.0])
    torch.testing.assert_close(reward.normalize(x), (x - 5.0) / 2.0)
    torch.testing.assert_close(cost.normalize(x), x / 2.0)
    assert torch.equal(torch.sign(cost.normalize(x)), torch.sign(x))  # C > 0 stays unsafe
    assert torch.equal(critic.normalize(x), x)
    assert isinstance(build_normalizer(None, "affine"), IdentityNormalizer)
    with pytest.raises(ValueError, match="normalizer_type"):
        build_normalizer("BatchNorm", "affine")


def test_statistics_update_from_end_scores_in_training_mode_only():
    model = tiny_score_model(normalizer_type="RunningMeanStd", do_normalize=True)
    ids, mask = pad(SEQUENCES, "left")
    with torch.no_grad():
        model.eval()
        model(ids, mask)
        assert model.normalizer.count.item() == 0 and model.normalizer.mean.item() == 0.0
        model.train()
        model.do_normalize = False
        raw = model(ids, mask).end_scores  # statistics are kept even when not normalizing
        assert model.normalizer.count.item() == 3
        torch.testing.assert_close(model.normalizer.mean, raw.mean(dim=0))
        model.eval()
        model.do_normalize = True
        normalized = model(ids, mask).end_scores
    assert model.normalizer.count.item() == 3
    torch.testing.assert_close(normalized, model.normalizer.normalize(raw))


def test_invalid_settings_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="score_type"):
        tiny_score_model(score_type="value")
    with pytest.raises(TypeError, match="unknown score model settings"):
        ScoreModel.from_pretrained(tmp_path, score_typo="cost")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        ScoreModel.from_pretrained(tmp_path)


def test_remote_code_is_off_by_default(tmp_path, monkeypatch):
    write_upstream_folder(tmp_path / "score", "safetensors")
    LlamaForCausalLM(tiny_config()).save_pretrained(tmp_path / "lm")
    seen = []
    for cls, name in (
        (AutoConfig, "from_pretrained"),
        (AutoModel, "from_config"),
        (AutoModel, "from_pretrained"),
    ):
        original = getattr(cls, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(kwargs.get("trust_remote_code"))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, name, spy)
    ScoreModel.from_pretrained(tmp_path / "score")
    ScoreModel.from_pretrained(tmp_path / "lm", score_type="reward")
    assert len(seen) >= 3 and set(seen) == {False}  # internal calls pass it on too
