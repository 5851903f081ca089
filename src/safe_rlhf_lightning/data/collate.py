"""Tokenization of records and collation of tokenized examples into the batches of ``types.py``.

Prompt and response are tokenized separately and concatenated, so the boundary between them is
exact whatever the tokenizer merges across it: the prompt gets the tokenizer's special tokens
(e.g. BOS), the response gets none and ends with EOS.

Truncation policy: a sequence longer than ``max_length`` loses the end of its response, EOS
included (a truncated response has no end, and keeping EOS would teach the model to stop
mid-sentence). A prompt that alone takes ``max_length`` tokens or more leaves no room for a
response and is a :class:`RecordError` (skippable), never silently cut: cutting it would drop
the template's ``ASSISTANT:``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from safe_rlhf_lightning.data.records import Origin, RecordError
from safe_rlhf_lightning.data.template import PromptTemplate
from safe_rlhf_lightning.types import (
    PreferenceBatch,
    PromptBatch,
    SafetyPreferenceBatch,
    SupervisedBatch,
)

logger = logging.getLogger(__name__)

_ENCODE_CHUNK = 4096  # texts per batched tokenizer call; progress is logged per chunk


# ---------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------


def eos_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} has no EOS token; responses must end with one "
            "(set tokenizer.eos_token, e.g. to '</s>')"
        )
    return int(tokenizer.eos_token_id)


def encode_batch(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, add_special_tokens: bool
) -> list[list[int]]:
    """Token ids of many texts, in chunks (the fast tokenizers parallelize each call); progress
    is logged about every tenth of a large set."""
    ids: list[list[int]] = []
    next_report = max(_ENCODE_CHUNK, len(texts) // 10)
    for start in range(0, len(texts), _ENCODE_CHUNK):
        chunk = list(texts[start : start + _ENCODE_CHUNK])
        encoded = tokenizer(
            chunk, add_special_tokens=add_special_tokens, return_attention_mask=False
        )
        ids.extend(list(row) for row in encoded["input_ids"])
        if len(ids) >= next_report and len(texts) > _ENCODE_CHUNK:
            logger.info("tokenized %d/%d texts", len(ids), len(texts))
            next_report += max(_ENCODE_CHUNK, len(texts) // 10)
    return ids


def _encode(
    tokenizer: PreTrainedTokenizerBase, text: str, *, add_special_tokens: bool
) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def check_prompt_fits(num_prompt_tokens: int, max_length: int, origin: Origin | None) -> None:
    if num_prompt_tokens >= max_length:
        raise RecordError(
            f"takes {num_prompt_tokens} tokens with the template, leaving no room for a "
            f"response within max_length={max_length}",
            origin=origin,
            field="prompt",
        )


def check_prompt_length(num_prompt_tokens: int, max_length: int, origin: Origin | None) -> None:
    if num_prompt_tokens > max_length:
        raise RecordError(
            f"takes {num_prompt_tokens} tokens with the template, more than "
            f"max_length={max_length}",
            origin=origin,
            field="prompt",
        )


def join_prompt_response(
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    eos_id: int,
    max_length: int,
    origin: Origin | None = None,
) -> tuple[list[int], list[bool], bool]:
    """``prompt + response + [EOS]`` cut to ``max_length``, its loss mask (True on response
    tokens and EOS) and whether the response was truncated."""
    check_prompt_fits(len(prompt_ids), max_length, origin)
    response = [*response_ids, eos_id]
    room = max_length - len(prompt_ids)
    truncated = len(response) > room
    response = response[:room]
    return [*prompt_ids, *response], [False] * len(prompt_ids) + [True] * len(response), truncated


def tokenize_supervised(
    prompt: str,
    response: str,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    max_length: int,
    *,
    origin: Origin | None = None,
) -> tuple[list[int], list[bool]]:
    """Token ids of one templated prompt + response + EOS, and the loss mask (False on the
    prompt, True on the response and EOS)."""
    eos = eos_token_id(tokenizer)
    prompt_ids = _encode(tokenizer, template.format_prompt(prompt), add_special_tokens=True)
    response_ids = _encode(tokenizer, template.format_response(response), add_special_tokens=False)
    input_ids, loss_mask, _ = join_prompt_response(
        prompt_ids, response_ids, eos, max_length, origin
    )
    return input_ids, loss_mask


def tokenize_pair(
    prompt: str,
    response_0: str,
    response_1: str,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    max_length: int,
    *,
    origin: Origin | None = None,
) -> tuple[list[int], list[int]]:
    """The two full sequences (prompt + response + EOS, truncated to ``max_length``)."""
    eos = eos_token_id(tokenizer)
    prompt_ids = _encode(tokenizer, template.format_prompt(prompt), add_special_tokens=True)
    first, second = (
        join_prompt_response(
            prompt_ids,
            _encode(tokenizer, template.format_response(response), add_special_tokens=False),
            eos,
            max_length,
            origin,
        )[0]
        for response in (response_0, response_1)
    )
    return first, second


def tokenize_prompt(
    prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    max_length: int,
    *,
    origin: Origin | None = None,
) -> list[int]:
    """Token ids of a templated prompt for generation; longer than ``max_length`` is an error."""
    prompt_ids = _encode(tokenizer, template.format_prompt(prompt), add_special_tokens=True)
    check_prompt_length(len(prompt_ids), max_length, origin)
    return prompt_ids


# ---------------------------------------------------------------------------------------------
# Examples (what the datasets hold) and collators (what the DataLoader calls)
# ---------------------------------------------------------------------------------------------


class SupervisedExample(NamedTuple):
    input_ids: Tensor  # (L,) long
    loss_mask: Tensor  # (L,) bool, True = response token (incl. EOS) whose prediction is trained


class PromptExample(NamedTuple):
    input_ids: Tensor  # (P,) long


class PreferenceExample(NamedTuple):
    better_input_ids: Tensor  # (L1,) long
    worse_input_ids: Tensor  # (L2,) long


class SafetyPreferenceExample(NamedTuple):
    safer_input_ids: Tensor  # (L1,) long
    unsafer_input_ids: Tensor  # (L2,) long
    safer_sign: int | tuple[int, ...]  # +1 labelled unsafe, -1 safe (cost > 0: unsafe); per
    unsafer_sign: int | tuple[int, ...]  # harm category for a multi-head cost model


def pad_sequences(
    sequences: Sequence[Tensor | Sequence[int] | Sequence[bool]],
    pad_value: int | bool,
    *,
    length: int | None = None,
    left: bool = False,
    dtype: torch.dtype = torch.long,
) -> tuple[Tensor, Tensor]:
    """Stack 1-D sequences into (B, L) with ``pad_value`` on the right (or the left), and the
    (B, L) bool mask of real entries. ``length`` defaults to the longest sequence."""
    if not sequences:
        raise ValueError("cannot collate an empty batch")
    rows = [torch.as_tensor(sequence, dtype=dtype) for sequence in sequences]
    width = max(len(row) for row in rows) if length is None else length
    padded = torch.full((len(rows), width), pad_value, dtype=dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"sequence {i} has {len(row)} tokens, more than length={width}")
        start = width - len(row) if left else 0
        padded[i, start : start + len(row)] = row
        mask[i, start : start + len(row)] = True
    return padded, mask


def _pad_pair(
    first: Sequence[Tensor], second: Sequence[Tensor], pad_token_id: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    # One common length for both sides, so a model can score them in one forward pass on
    # torch.cat([first, second]) (as upstream's reward and cost trainers do).
    if not first:
        raise ValueError("cannot collate an empty batch")
    length = max(len(sequence) for sequence in [*first, *second])
    first_ids, first_mask = pad_sequences(first, pad_token_id, length=length)
    second_ids, second_mask = pad_sequences(second, pad_token_id, length=length)
    return first_ids, first_mask, second_ids, second_mask


class SupervisedCollator:
    """Right-pads (prompt + response) sequences into a :class:`SupervisedBatch`."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[SupervisedExample]) -> SupervisedBatch:
        input_ids, attention_mask = pad_sequences(
            [example.input_ids for example in examples], self.pad_token_id
        )
        loss_mask, _ = pad_sequences(
            [example.loss_mask for example in examples], False, dtype=torch.bool
        )
        return SupervisedBatch(input_ids, attention_mask, loss_mask)


class PromptCollator:
    """Left-pads prompts into a :class:`PromptBatch`, so generation continues every row at the
    same position."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[PromptExample]) -> PromptBatch:
        input_ids, attention_mask = pad_sequences(
            [example.input_ids for example in examples], self.pad_token_id, left=True
        )
        return PromptBatch(input_ids, attention_mask)


class PreferenceCollator:
    """Right-pads (better, worse) pairs to one common length into a :class:`PreferenceBatch`."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[PreferenceExample]) -> PreferenceBatch:
        return PreferenceBatch(
            *_pad_pair(
                [example.better_input_ids for example in examples],
                [example.worse_input_ids for example in examples],
                self.pad_token_id,
            )
        )


class SafetyPreferenceCollator:
    """Right-pads (safer, unsafer) pairs to one common length, with their safety signs, into a
    :class:`SafetyPreferenceBatch`."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, examples: Sequence[SafetyPreferenceExample]) -> SafetyPreferenceBatch:
        padded = _pad_pair(
            [example.safer_input_ids for example in examples],
            [example.unsafer_input_ids for example in examples],
            self.pad_token_id,
        )
        safer_sign = torch.tensor([example.safer_sign for example in examples], dtype=torch.long)
        unsafer_sign = torch.tensor(
            [example.unsafer_sign for example in examples], dtype=torch.long
        )
        return SafetyPreferenceBatch(*padded, safer_sign, unsafer_sign)
