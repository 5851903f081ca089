"""Sample a policy on held-out prompts; score the samples with the ground-truth oracle (embedded
benchmark) or with learned reward and cost models (any data)."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..benchmark import Oracle, evaluate_responses
from ..data import Origin, PromptTemplate, load_records, pad_sequences, tokenize_supervised
from ..models import ScoreModel, generate_texts
from ..progress import progress as progress_bar

log = logging.getLogger(__name__)


def sample_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    template: PromptTemplate,
    *,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int | None = None,
    progress: str | None = None,
) -> list[str]:
    """One sampled response per raw prompt (the template is applied here).

    With a ``seed`` sampling uses its own RNG stream: the same policy gets the same samples in
    every run (so policies compare across runs), and the caller's RNG state is left untouched.
    """
    formatted = [template.format_prompt(prompt) for prompt in prompts]
    options = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "batch_size": batch_size,
        "progress": progress,
    }
    if seed is None:
        return generate_texts(model, tokenizer, formatted, **options)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return generate_texts(model, tokenizer, formatted, **options)


def oracle_scores(prompts: Sequence[str], responses: Sequence[str]) -> tuple[dict, list[dict]]:
    """The oracle metrics of ``evaluate_responses`` and one row per response with its scores."""
    oracle = Oracle()
    metrics = evaluate_responses(prompts, responses, oracle)
    rows = [
        {"prompt": p, "response": r, **dataclasses.asdict(oracle.score(p, r))}
        for p, r in zip(prompts, responses, strict=True)
    ]
    return metrics, rows


def held_out_prompts(
    specs: Sequence[str], data_root: str | Path, seed: int, limit: int | None
) -> list[str]:
    """The raw prompts of ``specs`` in a seeded shuffle, the first ``limit`` of them (None: all):
    the prompts that every stage evaluating a policy with this seed samples, in the same order."""
    records = load_records(list(specs), "prompt", data_root=data_root, seed=seed)
    prompts = [record.prompt for record in records]
    random.Random(seed).shuffle(prompts)
    return prompts[:limit] if limit is not None else prompts


def sample_policy(
    model, tokenizer, prompts, template, stage: Any, seed: int, progress: str | None = None
) -> list[str]:
    """One response per prompt with the stage's ``eval_*`` settings, sampled in an RNG stream of
    its own (``seed``): the same policy gets the same samples in every run and stage.
    ``progress``: the name of a progress bar over the batches (None: no bar)."""
    return sample_responses(
        model,
        tokenizer,
        prompts,
        template,
        max_new_tokens=stage.eval_max_new_tokens,
        temperature=stage.eval_temperature,
        top_p=stage.eval_top_p,
        batch_size=stage.eval_batch_size,
        seed=seed,
        progress=progress,
    )


def oracle_evaluation(
    model, tokenizer, prompts, template, stage: Any, seed: int, progress: str | None = None
):
    """``sample_policy``, scored by the oracle: metrics and one row per response."""
    responses = sample_policy(model, tokenizer, prompts, template, stage, seed, progress)
    return oracle_scores(prompts, responses)


@torch.no_grad()
def score_responses(
    model: ScoreModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    template: PromptTemplate,
    *,
    max_length: int = 256,
    batch_size: int = 64,
    origins: Sequence[Origin] | None = None,
    progress: str | None = None,
) -> list[float]:
    """End score of every (prompt, response) under a reward or cost model, encoded with the
    model's own tokenizer exactly as in its training (template, response, EOS). ``origins``
    (file and line of each record) make a prompt that does not fit an error naming its record.
    ``progress``: the name of a progress bar over the batches (None: no bar)."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    origins = origins if origins is not None else [None] * len(prompts)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores: list[float] = []
    try:
        for start in progress_bar(range(0, len(prompts), batch_size), progress):
            chunk = slice(start, start + batch_size)
            sequences = [
                tokenize_supervised(p, r, tokenizer, template, max_length, origin=o)[0]
                for p, r, o in zip(prompts[chunk], responses[chunk], origins[chunk], strict=True)
            ]
            ids, mask = pad_sequences(sequences, pad_id)
            end = model(ids.to(device), mask.to(device)).end_scores[:, 0]
            scores.extend(end.float().cpu().tolist())  # one host sync per batch
    finally:
        model.train(was_training)
    return scores
