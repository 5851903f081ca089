"""Tokenization with exact prompt masking, collation into types.py batches, and the datasets."""

from __future__ import annotations

import logging

import pytest
import torch

from safe_rlhf_lightning.data import (
    Origin,
    PreferenceCollator,
    PreferenceDataset,
    PreferenceExample,
    PromptCollator,
    PromptDataset,
    PromptExample,
    PromptTemplate,
    RecordError,
    SafetyPreferenceCollator,
    SafetyPreferenceDataset,
    SafetyPreferenceExample,
    SupervisedCollator,
    SupervisedDataset,
    SupervisedExample,
    parse_preference,
    parse_prompt,
    parse_supervised,
    tokenize_pair,
    tokenize_prompt,
    tokenize_supervised,
)
from safe_rlhf_lightning.types import PreferenceBatch, PromptBatch, SafetyPreferenceBatch

from .conftest import build_tokenizer, preference_row, supervised_row

TEMPLATE = PromptTemplate()
PROMPT = "How do I bake {bread}?"
RESPONSE = "Knead the dough, then bake it."
ORIGIN = Origin("sft.jsonl", "line 4")


def test_response_tokens_are_exactly_the_masked_in_tokens(tokenizer) -> None:
    input_ids, loss_mask = tokenize_supervised(PROMPT, RESPONSE, tokenizer, TEMPLATE, 512)
    assert len(input_ids) == len(loss_mask)
    prompt_part = [t for t, m in zip(input_ids, loss_mask, strict=True) if not m]
    response_part = [t for t, m in zip(input_ids, loss_mask, strict=True) if m]
    assert tokenizer.decode(prompt_part) == "<s>" + TEMPLATE.format_prompt(PROMPT)
    assert tokenizer.decode(response_part) == " " + RESPONSE + "</s>"
    assert response_part[-1] == tokenizer.eos_token_id
    # the mask is False on a prefix and True on the rest
    assert loss_mask == sorted(loss_mask)


def test_response_is_truncated_and_loses_eos(tokenizer) -> None:
    full, _ = tokenize_supervised(PROMPT, RESPONSE, tokenizer, TEMPLATE, 512)
    input_ids, loss_mask = tokenize_supervised(PROMPT, RESPONSE, tokenizer, TEMPLATE, len(full) - 3)
    assert input_ids == full[: len(full) - 3]
    assert tokenizer.eos_token_id not in input_ids
    prompt_length = len(tokenize_prompt(PROMPT, tokenizer, TEMPLATE, 512))
    assert sum(loss_mask) == len(full) - 3 - prompt_length > 0


def test_prompt_without_room_for_a_response_is_a_record_error(tokenizer) -> None:
    prompt_length = len(tokenizer(TEMPLATE.format_prompt(PROMPT))["input_ids"])
    with pytest.raises(RecordError) as caught:
        tokenize_supervised(PROMPT, RESPONSE, tokenizer, TEMPLATE, prompt_length, origin=ORIGIN)
    assert str(caught.value) == (
        f"sft.jsonl line 4: field 'prompt' takes {prompt_length} tokens with the template, "
        f"leaving no room for a response within max_length={prompt_length}"
    )
    ids, mask = tokenize_supervised(PROMPT, RESPONSE, tokenizer, TEMPLATE, prompt_length + 1)
    assert len(ids) == prompt_length + 1 and mask[-1] and sum(mask) == 1


def test_tokenizer_without_eos_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no EOS token"):
        tokenize_supervised(PROMPT, RESPONSE, build_tokenizer(with_eos=False), TEMPLATE, 64)


def test_tokenize_pair_and_prompt(tokenizer) -> None:
    first, second = tokenize_pair(PROMPT, "Yes.", RESPONSE, tokenizer, TEMPLATE, 512)
    prompt_ids = tokenize_prompt(PROMPT, tokenizer, TEMPLATE, 512)
    assert first[: len(prompt_ids)] == second[: len(prompt_ids)] == prompt_ids
    assert tokenizer.decode(first[len(prompt_ids) :]) == " Yes.</s>"
    assert tokenizer.decode(second[len(prompt_ids) :]) == f" {RESPONSE}</s>"
    short, _ = tokenize_pair(PROMPT, "Yes.", RESPONSE, tokenizer, TEMPLATE, len(prompt_ids) + 1)
    assert len(short) == len(prompt_ids) + 1
    with pytest.raises(RecordError, match="more than max_length=3"):
        tokenize_prompt(PROMPT, tokenizer, TEMPLATE, 3)


def test_supervised_collator_right_pads() -> None:
    examples = [
        SupervisedExample(torch.tensor([5, 6, 7]), torch.tensor([False, True, True])),
        SupervisedExample(torch.tensor([8]), torch.tensor([True])),
    ]
    batch = SupervisedCollator(pad_token_id=0)(examples)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.attention_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.loss_mask.tolist() == [[False, True, True], [True, False, False]]
    assert batch.input_ids.dtype == torch.long and batch.loss_mask.dtype == torch.bool


def test_prompt_collator_left_pads() -> None:
    batch = PromptCollator(pad_token_id=9)(
        [PromptExample(torch.tensor([1, 2, 3])), PromptExample(torch.tensor([4]))]
    )
    assert isinstance(batch, PromptBatch)
    assert batch.input_ids.tolist() == [[1, 2, 3], [9, 9, 4]]
    assert batch.attention_mask.tolist() == [[True, True, True], [False, False, True]]
    assert batch.attention_mask.dtype == torch.bool


def test_pair_collators_share_one_length() -> None:
    examples = [
        PreferenceExample(torch.tensor([1, 2]), torch.tensor([1, 3, 4, 5])),
        PreferenceExample(torch.tensor([1, 2, 3]), torch.tensor([1])),
    ]
    batch = PreferenceCollator(pad_token_id=0)(examples)
    assert isinstance(batch, PreferenceBatch)
    assert batch.better_input_ids.shape == batch.worse_input_ids.shape == (2, 4)
    assert batch.better_input_ids.tolist() == [[1, 2, 0, 0], [1, 2, 3, 0]]
    assert batch.worse_attention_mask.sum(dim=1).tolist() == [4, 1]

    safety = SafetyPreferenceCollator(pad_token_id=0)(
        [
            SafetyPreferenceExample(torch.tensor([1]), torch.tensor([1, 2]), -1, 1),
            SafetyPreferenceExample(torch.tensor([1, 2, 3]), torch.tensor([1]), 1, 1),
        ]
    )
    assert isinstance(safety, SafetyPreferenceBatch)
    assert safety.safer_input_ids.shape == safety.unsafer_input_ids.shape == (2, 3)
    assert safety.safer_sign.tolist() == [-1, 1] and safety.unsafer_sign.tolist() == [1, 1]
    assert safety.safer_sign.dtype == torch.long


def test_collating_an_empty_batch_fails() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        SupervisedCollator(0)([])


# ----------------------------------------------------------------------------- datasets


def test_supervised_dataset_matches_per_example_tokenization(tokenizer) -> None:
    records = [parse_supervised(supervised_row(i)) for i in range(5)]
    dataset = SupervisedDataset(records, tokenizer, max_length=64)
    assert len(dataset) == 5 and dataset.num_truncated == 0 and dataset.num_skipped == 0
    for record, example in zip(records, dataset, strict=True):
        ids, mask = tokenize_supervised(record.prompt, record.response, tokenizer, TEMPLATE, 64)
        assert example.input_ids.tolist() == ids and example.loss_mask.tolist() == mask


def test_supervised_dataset_counts_the_turns_of_its_longest_dialogue(tokenizer) -> None:
    records = [parse_supervised(supervised_row(i)) for i in range(3)]
    assert SupervisedDataset(records, tokenizer, max_length=64).dialogue_turns == 1
    eos = tokenizer.eos_token
    two_turns = supervised_row(3, prompt=f"Hi. ASSISTANT: Hello.{eos}USER: Bake bread?")
    records.append(parse_supervised(two_turns))
    assert SupervisedDataset(records, tokenizer, max_length=64).dialogue_turns == 2


def test_supervised_dataset_truncates_and_skips(tokenizer) -> None:
    long = parse_supervised(supervised_row(0, response="word " * 50), ORIGIN)
    records = [long, parse_supervised(supervised_row(1, prompt="x " * 100), ORIGIN)]
    with pytest.raises(RecordError, match=r"sft\.jsonl line 4: field 'prompt'"):
        SupervisedDataset(records, tokenizer, max_length=40)
    dataset = SupervisedDataset(records, tokenizer, max_length=40, skip_bad_records=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1 and dataset.num_truncated == 1
    assert len(dataset[0].input_ids) == 40


def test_preference_dataset_orders_better_first(tokenizer) -> None:
    rows = [preference_row(0, better_response_id=1), preference_row(1, better_response_id=0)]
    dataset = PreferenceDataset([parse_preference(row) for row in rows], tokenizer)
    for row, example in zip(rows, dataset, strict=True):
        better = row[f"response_{row['better_response_id']}"]
        worse = row[f"response_{1 - row['better_response_id']}"]
        assert tokenizer.decode(example.better_input_ids).endswith(f" {better}</s>")
        assert tokenizer.decode(example.worse_input_ids).endswith(f" {worse}</s>")


def test_identical_pairs_are_dropped_and_the_warning_names_them(tokenizer, caplog) -> None:
    row = preference_row(0, response_1="Same.", response_0="  Same.")
    same = [parse_preference(row, Origin("data/pairs.jsonl", f"line {i}")) for i in range(1, 8)]
    with caplog.at_level(logging.WARNING, logger="safe_rlhf_lightning.data"):
        dataset = PreferenceDataset([*same, parse_preference(preference_row(1))], tokenizer)
    assert len(dataset) == 1 and dataset.num_identical == 7 and dataset.num_skipped == 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "dropped 7 pairs" in warning and "max_length=512" in warning
    named = "; ".join(f"data/pairs.jsonl line {i}" for i in range(1, 6))
    assert warning.endswith(f": {named}; and 2 more")


@pytest.mark.parametrize(
    ("safer", "safe_0", "safe_1", "signs"),
    [(0, True, False, (-1, 1)), (1, False, True, (-1, 1)), (1, False, False, (1, 1))],
)
def test_safety_dataset_orders_safer_first_with_signs(
    tokenizer, safer: int, safe_0: bool, safe_1: bool, signs: tuple[int, int]
) -> None:
    row = preference_row(
        0, safer_response_id=safer, is_response_0_safe=safe_0, is_response_1_safe=safe_1
    )
    example = SafetyPreferenceDataset([parse_preference(row)], tokenizer)[0]
    assert tokenizer.decode(example.safer_input_ids).endswith(f" {row[f'response_{safer}']}</s>")
    assert tokenizer.decode(example.unsafer_input_ids).endswith(
        f" {row[f'response_{1 - safer}']}</s>"
    )
    assert (example.safer_sign, example.unsafer_sign) == signs


def test_safety_dataset_rejects_or_skips_inconsistent_labels(tokenizer) -> None:
    bad = parse_preference(
        preference_row(0, safer_response_id=1, is_response_0_safe=True, is_response_1_safe=False),
        Origin("pairs.jsonl", "line 1"),
    )
    records = [bad, parse_preference(preference_row(1))]
    with pytest.raises(RecordError, match=r"pairs\.jsonl line 1: inconsistent safety labels"):
        SafetyPreferenceDataset(records, tokenizer)
    dataset = SafetyPreferenceDataset(records, tokenizer, skip_bad_records=True)
    assert len(dataset) == 1 and dataset.num_skipped == 1
    # the reward model does not care about safety labels
    assert len(PreferenceDataset(records, tokenizer)) == 2


def test_prompt_dataset_deduplicates_and_bounds_length(tokenizer) -> None:
    records = [
        parse_prompt(preference_row(0)),
        parse_prompt(preference_row(1)),
        parse_preference(preference_row(0)),  # any record kind: its prompt is used
        parse_supervised(supervised_row(0, prompt="word " * 40)),
    ]
    dataset = PromptDataset(records, tokenizer, max_length=32, skip_bad_records=True)
    assert dataset.num_duplicates == 1 and dataset.num_skipped == 1 and len(dataset) == 2
    assert dataset[0].input_ids.tolist() == tokenize_prompt(
        preference_row(0)["prompt"], tokenizer, TEMPLATE, 32
    )
    assert len(PromptDataset(records[:3], tokenizer, deduplicate=False)) == 3
