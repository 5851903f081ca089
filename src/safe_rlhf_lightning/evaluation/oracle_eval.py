"""Sample a policy on benchmark prompts and score the samples with the ground-truth oracle."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..benchmark import Oracle, evaluate_responses
from ..data import PromptTemplate
from ..models import generate_texts

log = logging.getLogger(__name__)


def oracle_evaluate_policy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    template: PromptTemplate,
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
) -> tuple[dict[str, float], list[dict]]:
    """Returns the oracle metrics of ``evaluate_responses`` and one row per sampled response."""
    formatted = [template.format_prompt(prompt) for prompt in prompts]
    responses = generate_texts(
        model,
        tokenizer,
        formatted,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        batch_size=batch_size,
    )
    oracle = Oracle()
    metrics = evaluate_responses(prompts, responses, oracle)
    rows = [
        {"prompt": p, "response": r, **dataclasses.asdict(oracle.score(p, r))}
        for p, r in zip(prompts, responses, strict=True)
    ]
    return metrics, rows
