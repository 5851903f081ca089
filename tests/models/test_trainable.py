"""LoRA adapters and activation checkpointing on the tiny model: what trains, what is saved, and
that checkpointing changes neither gradients nor sampling."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from safe_rlhf_lightning.cli.models import prepare_trained_model
from safe_rlhf_lightning.config import ConfigError, LoraConfig, ModelConfig
from safe_rlhf_lightning.functional import sft_loss
from safe_rlhf_lightning.models import (
    LoraSettings,
    ScoreModel,
    build_tiny_causal_lm,
    decode,
    generate_texts,
    has_lora,
    merge_lora,
    prepare_trainable,
    save_pretrained_atomic,
)
from tests.conftest import TEST_MODEL_SIZE

SIZE = {**TEST_MODEL_SIZE, "num_layers": 2}
LORA = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("all-linear",))


def tiny_lm(tokenizer, seed=0):
    return build_tiny_causal_lm(tokenizer, seed=seed, **SIZE)


def randomize_lora_b(model, seed=0):
    """LoRA starts with B = 0 (no effect); random B makes the adapters change the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


def count_checkpoints(*models) -> list:
    """Counts the calls of each checkpointed layer's checkpoint function (one per layer pass)."""
    calls = []

    def counting(checkpoint):
        def wrapper(*args, **kwargs):
            calls.append(1)
            return checkpoint(*args, **kwargs)

        return wrapper

    for module in (module for model in models for module in model.modules()):
        if getattr(module, "gradient_checkpointing", False):
            module._gradient_checkpointing_func = counting(module._gradient_checkpointing_func)
    return calls


@pytest.mark.parametrize("lora", [None, LORA], ids=["full", "lora"])
def test_checkpointing_gives_the_gradients_of_a_plain_backward(lora, small_tokenizer):
    torch.manual_seed(0)
    ids = torch.randint(3, len(small_tokenizer), (4, 24))
    mask = torch.ones_like(ids, dtype=torch.bool)
    grads = []
    for checkpointing in (False, True):
        lm = prepare_trainable(
            tiny_lm(small_tokenizer), gradient_checkpointing=checkpointing, lora=lora
        )
        torch.manual_seed(1)  # the score head is drawn from the global RNG
        critic = ScoreModel(tiny_lm(small_tokenizer, seed=1), score_type="critic")
        prepare_trainable(critic, gradient_checkpointing=checkpointing, lora=lora)
        if lora is not None:  # the same adapters in both runs (A is drawn when it is added)
            torch.manual_seed(1)
            for model in (lm, critic):
                for name, parameter in model.named_parameters():
                    if "lora_A" in name:
                        torch.nn.init.normal_(parameter.data)
                randomize_lora_b(model)
        calls = count_checkpoints(lm, critic)
        lm.train(), critic.train()
        loss, _ = sft_loss(
            lm(input_ids=ids, attention_mask=mask, use_cache=False).logits, ids, mask
        )
        values = critic(ids, mask).scores
        (loss + values.square().mean()).backward()
        if checkpointing:
            # Not vacuous: every decoder layer of both models went through the checkpoint.
            assert len(calls) == 2 * SIZE["num_layers"]
        grads.append(
            {
                f"{owner}.{name}": parameter.grad
                for owner, model in (("lm", lm), ("critic", critic))
                for name, parameter in model.named_parameters()
                if parameter.requires_grad
            }
        )
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys()
    if lora is not None:
        assert all("lora_" in name or "score_head" in name for name in plain)
    for name, grad in plain.items():
        assert grad is not None and grad.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=0, msg=name)


def test_sampling_with_checkpointing_on_gives_the_same_tokens(small_tokenizer):
    plain = tiny_lm(small_tokenizer)
    checkpointed = prepare_trainable(copy.deepcopy(plain), gradient_checkpointing=True).train()
    calls = count_checkpoints(checkpointed)
    prompts = ["USER: How do I bake bread? ASSISTANT:", "USER: Hi ASSISTANT:"]
    texts = []
    for model in (plain, checkpointed):
        torch.manual_seed(3)
        texts.append(generate_texts(model, small_tokenizer, prompts, max_new_tokens=12))
    assert texts[0] == texts[1] and checkpointed.training  # its mode was restored
    # decode straight on a model left in training mode: no gradient, so no checkpoint either,
    # and the KV cache is used as always.
    encoded = small_tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    options = {
        "max_new_tokens": 12,
        "eos_token_id": small_tokenizer.eos_token_id,
        "pad_token_id": small_tokenizer.pad_token_id,
    }
    tokens = []
    for model in (plain.eval(), checkpointed.train()):
        torch.manual_seed(4)
        tokens.append(decode(model, encoded["input_ids"], encoded["attention_mask"], **options))
    assert torch.equal(tokens[0], tokens[1])
    assert calls == []


def test_lora_trains_only_adapters_and_merges_into_a_plain_model(small_tokenizer, tmp_path):
    base = tiny_lm(small_tokenizer)
    model = randomize_lora_b(prepare_trainable(copy.deepcopy(base), lora=LORA))
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    assert "lm_head" not in " ".join(trained)  # all-linear leaves out the output head
    ids = torch.randint(3, len(small_tokenizer), (2, 10))
    with torch.no_grad():
        adapted = model.eval()(ids).logits
        assert not torch.allclose(adapted, base.eval()(ids).logits)  # the adapters act
    with pytest.raises(ValueError, match="merge_lora"):
        save_pretrained_atomic(model, small_tokenizer, tmp_path / "unmerged")

    assert merge_lora(model) is model and not has_lora(model)
    assert model.state_dict().keys() == base.state_dict().keys()
    save_pretrained_atomic(model, small_tokenizer, tmp_path / "merged")
    assert not any("lora" in key for key in load_file(tmp_path / "merged" / "model.safetensors"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, adapted, atol=1e-5, rtol=1e-5)


def test_lora_on_a_score_model_keeps_the_head_trained_and_saves_a_plain_folder(
    small_tokenizer, tmp_path
):
    model = ScoreModel(tiny_lm(small_tokenizer), score_type="reward")
    keys = model.state_dict().keys()
    randomize_lora_b(prepare_trainable(model, lora=LORA._replace(target_modules=("q_proj",))))
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert {"score_head.weight", "score_head.bias"} <= set(trained)
    assert all(".q_proj.lora_" in n for n in trained if not n.startswith("score_head."))
    ids = torch.randint(3, len(small_tokenizer), (2, 10))
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        adapted = model.eval()(ids, mask).scores
    with pytest.raises(ValueError, match="merge_lora"):
        model.save_pretrained(tmp_path / "unmerged")
    merge_lora(model).save_pretrained(tmp_path / "merged", small_tokenizer)
    assert model.state_dict().keys() == keys
    reloaded = ScoreModel.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, mask).scores, adapted, atol=1e-5, rtol=1e-5)


def test_config_lora_and_checkpointing_reach_the_model_and_bad_targets_name_the_key(
    small_tokenizer,
):
    lora = LoraConfig(enabled=True, target_modules=["q_proj", "v_proj"])
    config = ModelConfig(name_or_path=None, gradient_checkpointing=True, lora=lora)
    model = prepare_trained_model(tiny_lm(small_tokenizer), config)
    adapted = {name.split(".")[-2] for name, _ in model.named_modules() if name.endswith(".lora_A")}
    assert adapted == {"q_proj", "v_proj"}
    assert model.is_activation_checkpointing
    plain = prepare_trained_model(tiny_lm(small_tokenizer), ModelConfig(name_or_path=None))
    assert not has_lora(plain) and not plain.is_activation_checkpointing

    config.lora.target_modules = ["c_attn"]
    with pytest.raises(ConfigError, match=r"'model\.lora\.target_modules'.*'q_proj'"):
        prepare_trained_model(tiny_lm(small_tokenizer), config)
