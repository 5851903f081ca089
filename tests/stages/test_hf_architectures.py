"""Real architectures by folder, the way a hub name is loaded: tiny Llama, GPT-2 and Qwen2
models written with ``save_pretrained`` (with tokenizers in each family's conventions), trained
through ``model=pretrained model.name_or_path=<folder>`` and then scored by a reward model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.models import ScoreModel
from tests.conftest import compose_run_config

SIZE = {"hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "positions": 512}
# The special tokens of each family: Llama and GPT-2 have no pad token (one must be added);
# Qwen2 pads with its EOS; only Llama prepends a BOS.
FAMILIES = {
    "llama": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "gpt2": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
             "unk_token": "<|endoftext|>"},
    "qwen2": {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
}  # fmt: skip


def family_tokenizer(family: str, corpus: list[str]) -> PreTrainedTokenizerFast:
    special = FAMILIES[family]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=list(dict.fromkeys(special.values())),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    if family == "llama":
        bos = backend.token_to_id("<s>")
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def family_model(family: str, tokenizer: PreTrainedTokenizerFast):
    torch.manual_seed(0)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if family == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=SIZE["hidden"],
            n_layer=SIZE["layers"],
            n_head=SIZE["heads"],
            n_positions=SIZE["positions"],
            **ids,
        )
        return GPT2LMHeadModel(config)
    shape = {
        "vocab_size": len(tokenizer),
        "hidden_size": SIZE["hidden"],
        "num_hidden_layers": SIZE["layers"],
        "num_attention_heads": SIZE["heads"],
        "num_key_value_heads": SIZE["heads"],
        "intermediate_size": SIZE["intermediate"],
        "max_position_embeddings": SIZE["positions"],
        **ids,
    }
    if family == "llama":
        return LlamaForCausalLM(LlamaConfig(**shape))
    return Qwen2ForCausalLM(Qwen2Config(**shape, pad_token_id=tokenizer.pad_token_id))


@pytest.fixture(scope="module")
def hub_like_folders(tmp_path_factory) -> dict[str, Path]:
    """One folder per family, as ``save_pretrained`` (or a hub download) leaves it."""
    from safe_rlhf_lightning.benchmark import benchmark_corpus
    from safe_rlhf_lightning.data import PromptTemplate

    corpus = [*benchmark_corpus(), PromptTemplate().format_prompt("")]
    root = tmp_path_factory.mktemp("hub")
    folders = {}
    for family in FAMILIES:
        tokenizer = family_tokenizer(family, corpus)
        folders[family] = root / f"tiny-{family}"
        family_model(family, tokenizer).save_pretrained(folders[family])
        tokenizer.save_pretrained(folders[family])
    return folders


def _run(overrides: list[str], tmp_path: Path, benchmark_dir: Path) -> Path:
    run_stage(
        compose_run_config([*overrides, "debug=fast", "logger=none"], tmp_path, benchmark_dir)
    )
    return tmp_path / "run"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_sft_then_reward_on_a_local_folder_of_each_family(
    family, hub_like_folders, benchmark_dir, tmp_path
):
    folder = hub_like_folders[family]
    original = AutoTokenizer.from_pretrained(folder)
    sft = _run(
        [
            "model=pretrained",
            f"model.name_or_path={folder}",
            "stage.max_steps=2",
            "stage.eval_limit=0",
            "data.sft_train=[benchmark-sft/train:0.01]",
            "data.sft_eval=[benchmark-sft/test:0.05]",
        ],
        tmp_path / "sft",
        benchmark_dir,
    )
    results = json.loads((sft / "results.json").read_text())
    assert torch.isfinite(torch.tensor(results["val"]["val/loss"]))

    model = AutoModelForCausalLM.from_pretrained(sft / "model")
    tokenizer = AutoTokenizer.from_pretrained(sft / "model")
    assert type(model).__name__.lower().startswith(family)
    assert tokenizer.pad_token is not None and tokenizer.eos_token is not None
    added = int(original.pad_token is None)  # Llama and GPT-2 get a pad token, Qwen2 keeps its own
    assert len(tokenizer) == len(original) + added == model.get_input_embeddings().num_embeddings
    assert model.config.pad_token_id == tokenizer.pad_token_id

    reward = _run(
        [
            "stage=reward",
            f"stage.init_from={sft / 'model'}",
            "stage.max_steps=2",
            "stage.eval_limit=8",
            "data.preference_train=[benchmark-preference/train:0.003]",
        ],
        tmp_path / "reward",
        benchmark_dir,
    )
    metrics = json.loads((reward / "results.json").read_text())["test"]
    assert metrics["num_pairs"] == 8 and 0.0 <= metrics["accuracy"] <= 1.0
    score_model = ScoreModel.from_pretrained(reward / "model")
    assert type(score_model.model).__name__.lower().startswith(family)
