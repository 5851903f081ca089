"""The oracle evaluation samples from its own seeded RNG stream."""

from __future__ import annotations

import torch

from safe_rlhf_lightning.config import SFTStageConfig
from safe_rlhf_lightning.data import PromptTemplate
from safe_rlhf_lightning.evaluation import oracle_evaluation
from safe_rlhf_lightning.models import build_tiny_causal_lm


def test_same_policy_same_samples_and_training_rng_untouched(small_tokenizer):
    model = build_tiny_causal_lm(
        small_tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    )
    stage = SFTStageConfig(eval_max_new_tokens=6, eval_batch_size=4)
    prompts = ["How do I bake fresh bread?", "Can you explain how to paint a room?"] * 2
    torch.manual_seed(123)
    state = torch.get_rng_state()
    _, first = oracle_evaluation(model, small_tokenizer, prompts, PromptTemplate(), stage, seed=7)
    assert torch.equal(torch.get_rng_state(), state)  # training's stream did not advance
    torch.rand(5)  # whatever happened in between
    _, second = oracle_evaluation(model, small_tokenizer, prompts, PromptTemplate(), stage, seed=7)
    assert [r["response"] for r in first] == [r["response"] for r in second]
    _, other = oracle_evaluation(model, small_tokenizer, prompts, PromptTemplate(), stage, seed=8)
    assert [r["response"] for r in other] != [r["response"] for r in first]
