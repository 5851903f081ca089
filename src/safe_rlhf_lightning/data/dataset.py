"""Torch datasets of tokenized examples, built once from validated records.

Each dataset tokenizes all its records in ``__init__`` with batched tokenizer calls and keeps
counters a caller can log or assert on: ``num_skipped`` (bad records dropped under
``skip_bad_records``) and ``num_truncated`` (sequences whose response was cut to ``max_length``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from safe_rlhf_lightning.data.collate import (
    PreferenceExample,
    PromptExample,
    SafetyPreferenceExample,
    SupervisedExample,
    check_prompt_length,
    encode_batch,
    eos_token_id,
    join_prompt_response,
)
from safe_rlhf_lightning.data.records import (
    PreferenceRecord,
    Record,
    RecordError,
    SupervisedRecord,
    check_safety_consistency,
    require_safety_labels,
)
from safe_rlhf_lightning.data.template import PromptTemplate

logger = logging.getLogger(__name__)

MAX_NAMED = 5
"""How many dropped records a warning names (file and line) before it only counts them."""

R = TypeVar("R")
E = TypeVar("E")


def _build_examples(
    records: Sequence[R],
    build: Callable[[int, R], E | None],
    *,
    skip_bad_records: bool,
    label: str,
) -> tuple[list[E], int]:
    """``build`` every record; a :class:`RecordError` raises, or is counted and skipped. A
    ``None`` from ``build`` drops the record without counting it as bad."""
    examples: list[E] = []
    errors: list[RecordError] = []
    for index, record in enumerate(records):
        try:
            example = build(index, record)
        except RecordError as error:
            if not skip_bad_records:
                raise
            errors.append(error)
            continue
        if example is not None:
            examples.append(example)
    if errors:
        logger.warning(
            "%s: skipped %d of %d records (first: %s)", label, len(errors), len(records), errors[0]
        )
    return examples, len(errors)


def _log_truncated(label: str, num_truncated: int, total: int, max_length: int) -> None:
    if num_truncated:
        logger.info(
            "%s: %d of %d sequences truncated to max_length=%d",
            label,
            num_truncated,
            total,
            max_length,
        )


class ExampleList(Dataset[E], Generic[E]):
    """A dataset of examples tokenized once up front (``self.examples``), with the counts of
    the records it left out."""

    examples: list[E]
    num_skipped: int = 0  # bad records left out under skip_bad_records
    num_identical: int = 0  # pairs left out as the same tokens twice (preference datasets)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> E:
        return self.examples[index]


class SupervisedDataset(ExampleList[SupervisedExample]):
    """Templated prompt + response + EOS with a loss mask on the response, for SFT."""

    def __init__(
        self,
        records: Sequence[SupervisedRecord],
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate | None = None,
        max_length: int = 512,
        skip_bad_records: bool = False,
    ) -> None:
        template = template or PromptTemplate()
        eos = eos_token_id(tokenizer)
        prompts = [template.format_prompt(record.prompt) for record in records]
        responses = [template.format_response(record.response) for record in records]
        prompt_ids = encode_batch(tokenizer, prompts, add_special_tokens=True)
        response_ids = encode_batch(tokenizer, responses, add_special_tokens=False)
        self.num_truncated = 0

        def build(index: int, record: SupervisedRecord) -> SupervisedExample:
            ids, mask, truncated = join_prompt_response(
                prompt_ids[index], response_ids[index], eos, max_length, record.origin
            )
            self.num_truncated += truncated
            return SupervisedExample(torch.tensor(ids), torch.tensor(mask, dtype=torch.bool))

        label = type(self).__name__
        self.examples, self.num_skipped = _build_examples(
            records, build, skip_bad_records=skip_bad_records, label=label
        )
        _log_truncated(label, self.num_truncated, len(self.examples), max_length)
        end_of_response = tokenizer.eos_token or ""
        self.dialogue_turns = max(
            (template.dialogue_turns(r.prompt, end_of_response=end_of_response) for r in records),
            default=1,
        )
        """The most turns of any record, in the template's dialogue layout (1: every record is
        one prompt and its response)."""


class PromptDataset(ExampleList[PromptExample]):
    """Templated prompts for generation. Any record kind works (its prompt is taken).

    Args:
        max_length: a longer prompt is a :class:`RecordError` (skippable); prompts are never
            cut, since that would drop the template's ``ASSISTANT:``.
        deduplicate: keep the first of records with the same prompt text (as upstream does), so
            that a preference set read as prompts does not weight a prompt by its number of pairs.
    """

    def __init__(
        self,
        records: Sequence[Record],
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate | None = None,
        max_length: int = 512,
        skip_bad_records: bool = False,
        deduplicate: bool = True,
    ) -> None:
        template = template or PromptTemplate()
        self.num_duplicates = 0
        if deduplicate:
            first: dict[str, Record] = {}
            for record in records:
                first.setdefault(record.prompt, record)
            unique = list(first.values())
            self.num_duplicates = len(records) - len(unique)
            records = unique
        texts = [template.format_prompt(record.prompt) for record in records]
        prompt_ids = encode_batch(tokenizer, texts, add_special_tokens=True)

        def build(index: int, record: Record) -> PromptExample:
            check_prompt_length(len(prompt_ids[index]), max_length, record.origin)
            return PromptExample(torch.tensor(prompt_ids[index]))

        self.examples, self.num_skipped = _build_examples(
            records, build, skip_bad_records=skip_bad_records, label=type(self).__name__
        )


class _PairTokens:
    """The two full sequences (prompt + response_i + EOS) of every preference record."""

    def __init__(
        self,
        records: Sequence[PreferenceRecord],
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate,
        max_length: int,
    ) -> None:
        self.eos = eos_token_id(tokenizer)
        self.max_length = max_length
        prompts = [template.format_prompt(record.prompt) for record in records]
        responses = [template.format_response(record.response_0) for record in records]
        responses += [template.format_response(record.response_1) for record in records]
        self.prompt_ids = encode_batch(tokenizer, prompts, add_special_tokens=True)
        self.response_ids = encode_batch(tokenizer, responses, add_special_tokens=False)
        self.num_records = len(records)
        self.num_truncated = 0
        self.identical: list[str] = []  # where the pairs identical after tokenization are

    @property
    def num_identical(self) -> int:
        return len(self.identical)

    def sequences(self, index: int, record: PreferenceRecord) -> tuple[list[int], list[int]] | None:
        """(sequence of response 0, sequence of response 1), or None when they are the same
        tokens after truncation: such a pair carries no preference and is dropped (counted in
        ``num_identical``; upstream raises instead)."""
        pair = []
        for response_id in (0, 1):
            response = self.response_ids[index + response_id * self.num_records]
            ids, _, truncated = join_prompt_response(
                self.prompt_ids[index], response, self.eos, self.max_length, record.origin
            )
            self.num_truncated += truncated
            pair.append(ids)
        if pair[0] == pair[1]:
            self.identical.append(str(record.origin or f"record {index}"))
            return None
        return pair[0], pair[1]

    def build(
        self,
        records: Sequence[PreferenceRecord],
        build: Callable[[int, PreferenceRecord], E | None],
        *,
        skip_bad_records: bool,
        label: str,
    ) -> tuple[list[E], int, int, int]:
        """Examples, then the counts of skipped, truncated and identical pairs (all logged)."""
        examples, num_skipped = _build_examples(
            records, build, skip_bad_records=skip_bad_records, label=label
        )
        self.log(label)
        return examples, num_skipped, self.num_truncated, self.num_identical

    def log(self, label: str) -> None:
        _log_truncated(label, self.num_truncated, 2 * self.num_records, self.max_length)
        if self.identical:
            shown = "; ".join(self.identical[:MAX_NAMED])
            unnamed = self.num_identical - MAX_NAMED
            more = f"; and {unnamed} more" if unnamed > 0 else ""
            logger.warning(
                "%s: dropped %d pairs whose two responses are the same tokens after tokenization "
                "and truncation to max_length=%d: %s%s",
                label,
                self.num_identical,
                self.max_length,
                shown,
                more,
            )


class PreferenceDataset(ExampleList[PreferenceExample]):
    """(better, worse) sequences for the reward model, from ``better_response_id``."""

    def __init__(
        self,
        records: Sequence[PreferenceRecord],
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate | None = None,
        max_length: int = 512,
        skip_bad_records: bool = False,
    ) -> None:
        pairs = _PairTokens(records, tokenizer, template or PromptTemplate(), max_length)

        def build(index: int, record: PreferenceRecord) -> PreferenceExample | None:
            sequences = pairs.sequences(index, record)
            if sequences is None:
                return None
            better = record.better_response_id
            return PreferenceExample(
                torch.tensor(sequences[better]), torch.tensor(sequences[1 - better])
            )

        self.examples, self.num_skipped, self.num_truncated, self.num_identical = pairs.build(
            records, build, skip_bad_records=skip_bad_records, label=type(self).__name__
        )


def safety_sign(is_safe: bool) -> int:
    """+1 for a response labelled unsafe, -1 for a safe one (cost > 0 means unsafe)."""
    return -1 if is_safe else 1


def category_signs(record: PreferenceRecord, response: int, categories: Sequence[str]) -> tuple:
    """One sign per harm category for response ``response`` of ``record``: +1 when it is
    labelled harmful in that category, -1 when not, from ``response_<i>_harm_category``: a list
    of category names (the embedded benchmark) or a mapping name -> bool (PKU-SafeRLHF)."""
    labels = record.extra.get(f"response_{response}_harm_category")
    if isinstance(labels, dict):
        labels = [name for name, harmful in labels.items() if harmful]
    if not isinstance(labels, list | tuple):
        raise RecordError(
            f"has no response_{response}_harm_category list (or mapping), which per-category "
            f"cost heads ({', '.join(categories)}) are trained on",
            origin=record.origin,
        )
    return tuple(1 if category in labels else -1 for category in categories)


class SafetyPreferenceDataset(ExampleList[SafetyPreferenceExample]):
    """(safer, unsafer) sequences and safety signs for the cost model, from
    ``safer_response_id`` and the ``is_response_*_safe`` labels. Pairs with inconsistent labels
    (see :func:`check_safety_consistency`) are errors, or skipped and counted. A pair without
    safety labels is always an error (its dataset is not a cost model's, see
    :func:`require_safety_labels`). With ``categories`` (a multi-head cost model, one head per
    harm category) each sign is a tuple, one per category (:func:`category_signs`)."""

    def __init__(
        self,
        records: Sequence[PreferenceRecord],
        tokenizer: PreTrainedTokenizerBase,
        template: PromptTemplate | None = None,
        max_length: int = 512,
        skip_bad_records: bool = False,
        categories: Sequence[str] | None = None,
    ) -> None:
        require_safety_labels(records)
        pairs = _PairTokens(records, tokenizer, template or PromptTemplate(), max_length)

        def build(index: int, record: PreferenceRecord) -> SafetyPreferenceExample | None:
            check_safety_consistency(record)
            sequences = pairs.sequences(index, record)
            if sequences is None:
                return None
            safer = record.safer_response_id
            if categories:
                signs = [category_signs(record, i, categories) for i in (safer, 1 - safer)]
            else:
                signs = [safety_sign(record.is_safe(i)) for i in (safer, 1 - safer)]
            return SafetyPreferenceExample(
                torch.tensor(sequences[safer]), torch.tensor(sequences[1 - safer]), *signs
            )

        self.examples, self.num_skipped, self.num_truncated, self.num_identical = pairs.build(
            records, build, skip_bad_records=skip_bad_records, label=type(self).__name__
        )
