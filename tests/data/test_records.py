"""Record schemas: valid rows parse, each bad case names source, location, field and values."""

from __future__ import annotations

import numpy as np
import pytest

from safe_rlhf_lightning.data import (
    Origin,
    PreferenceRecord,
    PromptRecord,
    RecordError,
    SupervisedRecord,
    check_safety_consistency,
    parse_preference,
    parse_prompt,
    parse_record,
    parse_supervised,
    record_to_row,
)

from .conftest import preference_row, supervised_row

ORIGIN = Origin("data/pairs.jsonl", "line 7")


def test_preference_row_parses_and_keeps_extra_fields() -> None:
    record = parse_preference(preference_row(3), ORIGIN)
    assert isinstance(record, PreferenceRecord)
    assert record.better_response_id == 1 and record.safer_response_id == 0
    assert record.is_response_0_safe is True and record.is_response_1_safe is False
    assert record.extra["response_1_severity_level"] == 2
    assert record.extra["oracle_cost_0"] == -1.5
    assert record.extra["prompt_kind"] == "harmful" and record.extra["topic"] == "locks"
    assert "prompt" not in record.extra
    assert record.origin == ORIGIN
    assert record_to_row(record) == preference_row(3)


def test_supervised_and_prompt_rows_parse() -> None:
    record = parse_supervised(supervised_row(1))
    assert isinstance(record, SupervisedRecord)
    assert record.extra == {"topic": "baking"}
    prompt = parse_prompt(preference_row(2))
    assert isinstance(prompt, PromptRecord)
    assert prompt.prompt == preference_row(2)["prompt"]
    assert prompt.extra["response_0"] == preference_row(2)["response_0"]


def test_records_read_as_prompts() -> None:
    pair = parse_preference(preference_row(0), ORIGIN)
    assert pair.as_prompt() == PromptRecord(pair.prompt, pair.extra)
    assert pair.as_prompt().origin == ORIGIN
    assert parse_supervised(supervised_row(0)).as_prompt().prompt == supervised_row(0)["prompt"]


def test_numpy_scalars_are_accepted() -> None:
    row = preference_row(better_response_id=np.int64(0), is_response_0_safe=np.bool_(True))
    record = parse_preference(row)
    assert type(record.better_response_id) is int and record.better_response_id == 0
    assert type(record.is_response_0_safe) is bool


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            preference_row(better_response_id=2),
            "data/pairs.jsonl line 7: field 'better_response_id' must be 0 or 1, got 2",
        ),
        (
            preference_row(safer_response_id="1"),
            "data/pairs.jsonl line 7: field 'safer_response_id' must be 0 or 1, got '1' (str)",
        ),
        (
            preference_row(better_response_id=True),
            "field 'better_response_id' must be 0 or 1, got True (bool)",
        ),
        (
            preference_row(is_response_0_safe=1),
            "data/pairs.jsonl line 7: field 'is_response_0_safe' must be a boolean (true/false), "
            "got 1 (int)",
        ),
        (
            preference_row(is_response_1_safe="false"),
            "field 'is_response_1_safe' must be a boolean (true/false), got 'false' (str)",
        ),
        (
            preference_row(response_0=""),
            "data/pairs.jsonl line 7: field 'response_0' must be a non-empty string, got ''",
        ),
        (
            preference_row(response_1="  \n"),
            "field 'response_1' must be a non-empty string, got '  \\n'",
        ),
        (
            preference_row(response_0="Same answer.", response_1="Same answer."),
            "data/pairs.jsonl line 7: field 'response_1' is identical to response_0",
        ),
        (
            preference_row(prompt=None),
            "data/pairs.jsonl line 7: field 'prompt' must be a string, got None (NoneType)",
        ),
        (
            preference_row(prompt=["a", "b"]),
            "field 'prompt' must be a string, got ['a', 'b'] (list)",
        ),
    ],
)
def test_bad_preference_fields(row: dict, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_preference(row, ORIGIN)
    assert message in str(caught.value)


def test_missing_field_lists_the_fields_found() -> None:
    row = preference_row()
    del row["safer_response_id"]
    with pytest.raises(RecordError, match="safer_response_id") as caught:
        parse_preference(row, ORIGIN)
    error = caught.value
    assert str(error).startswith("data/pairs.jsonl line 7: field 'safer_response_id' is missing")
    assert "better_response_id" in str(error)  # the fields found are listed
    assert error.field == "safer_response_id" and error.origin == ORIGIN


def test_missing_response_in_supervised_row() -> None:
    with pytest.raises(RecordError, match="field 'response' is missing"):
        parse_supervised({"prompt": "hi"}, ORIGIN)


def test_row_that_is_not_a_mapping() -> None:
    with pytest.raises(RecordError, match=r"line 7: must be an object .* got \[1, 2\] \(list\)"):
        parse_record([1, 2], "prompt", ORIGIN)


def test_unknown_kind_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="unknown record kind"):
        parse_record({"prompt": "x"}, "dialogue", ORIGIN)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("safer", "safe_0", "safe_1", "consistent"),
    [
        (0, True, False, True),
        (0, True, True, True),
        (0, False, False, True),
        (0, False, True, False),  # the safer one is unsafe while the other is safe
        (1, True, False, False),
        (1, False, True, True),
    ],
)
def test_safety_consistency(safer: int, safe_0: bool, safe_1: bool, consistent: bool) -> None:
    record = parse_preference(
        preference_row(
            safer_response_id=safer, is_response_0_safe=safe_0, is_response_1_safe=safe_1
        ),
        ORIGIN,
    )
    if consistent:
        check_safety_consistency(record)
    else:
        with pytest.raises(RecordError, match=r"data/pairs\.jsonl line 7: inconsistent safety"):
            check_safety_consistency(record)


def test_pairs_without_safety_labels_have_all_three_null() -> None:
    row = preference_row(safer_response_id=None, is_response_0_safe=None, is_response_1_safe=None)
    record = parse_preference(row, ORIGIN)
    assert not record.has_safety_labels and record.better_response_id == 1
    assert record.is_safe(0) is None and record_to_row(record) == row
    with pytest.raises(RecordError, match="has no safety labels"):
        check_safety_consistency(record)
    partial = preference_row(safer_response_id=None, is_response_0_safe=None)
    with pytest.raises(RecordError, match="field 'safer_response_id' must be 0 or 1, got None"):
        parse_preference(partial, ORIGIN)
