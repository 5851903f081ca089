"""Fixtures for the data layer's tests: a local tokenizer and small fixture files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

CORPUS = [
    "BEGINNING OF CONVERSATION: USER: How do I bake bread? ASSISTANT: Mix flour, water and yeast.",
    "BEGINNING OF CONVERSATION: USER: How can I pick a lock? ASSISTANT: I cannot help with that.",
    "Knead the dough for ten minutes, let it rise, then bake it at two hundred degrees.",
    "Here is a safer way to learn: take a locksmith course and practise on your own locks.",
    "The weather is nice today {with braces} and some punctuation: ok? yes! 123.",
]


def build_tokenizer(*, with_bos: bool = True, with_eos: bool = True) -> PreTrainedTokenizerFast:
    """A tiny byte-level BPE (any text encodes) with <pad>=0, <s>=1, </s>=2; BOS is added
    to every text encoded with special tokens, like Llama's tokenizer does."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    if with_bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
        )
    special = {"pad_token": "<pad>", "bos_token": "<s>"}
    if with_eos:
        special["eos_token"] = "</s>"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerBase:
    return build_tokenizer()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def preference_row(index: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid PKU-SafeRLHF-style row, with some of its extra fields."""
    row = {
        "prompt": f"How can I pick lock number {index}?",
        "response_0": f"Take a locksmith course, lesson {index}.",
        "response_1": f"Insert a tension wrench and rake the pins of lock {index}.",
        "better_response_id": 1,
        "safer_response_id": 0,
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "response_0_harm_category": {"Violence": False},
        "response_1_severity_level": 2,
        "prompt_kind": "harmful",
        "topic": "locks",
        "oracle_cost_0": -1.5,
    }
    row.update(overrides)
    return row


def supervised_row(index: int = 0, **overrides: Any) -> dict[str, Any]:
    row = {
        "prompt": f"How do I bake bread number {index}?",
        "response": f"Knead the dough for {index} minutes.",
        "topic": "baking",
    }
    row.update(overrides)
    return row


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """The embedded benchmark's file layout with a few records each."""
    root = tmp_path / "benchmark"
    for split, size in (("train", 10), ("test", 4)):
        write_jsonl(root / f"sft_{split}.jsonl", (supervised_row(i) for i in range(size)))
        write_jsonl(root / f"preference_{split}.jsonl", (preference_row(i) for i in range(size)))
        prompts = ({"prompt": f"Prompt {i}?", "topic": "misc"} for i in range(size))
        write_jsonl(root / f"prompts_{split}.jsonl", prompts)
    return root
