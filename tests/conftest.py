"""Shared test set-up: offline by default, small local tokenizers, tmp run folders."""

from __future__ import annotations

import os

# Before transformers / datasets are imported anywhere: never reach for the hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

SMALL_CORPUS = [
    "How do I bake bread at home?",
    "First, mix flour, water and salt. Next, knead the dough for ten minutes.",
    "I am sorry, but I cannot help with that.",
    "BEGINNING OF CONVERSATION: USER: ASSISTANT:",
] * 20


@pytest.fixture(scope="session")
def small_tokenizer():
    from safe_rlhf_lightning.models import train_bpe_tokenizer

    return train_bpe_tokenizer(SMALL_CORPUS, vocab_size=400)
