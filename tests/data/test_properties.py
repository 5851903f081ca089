"""Property-based tests: record parsing and collation invariants."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safe_rlhf_lightning.data import (
    PreferenceCollator,
    PreferenceExample,
    PromptCollator,
    PromptExample,
    RecordError,
    SupervisedCollator,
    SupervisedExample,
    load_records,
    parse_record,
    record_to_row,
)

texts = st.text(min_size=1).filter(lambda text: text.strip() != "")
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=6,
)
extra_fields = st.dictionaries(st.text(min_size=1), json_values, max_size=4)
preference_rows = st.fixed_dictionaries(
    {
        "prompt": texts,
        "response_0": texts,
        "response_1": texts,
        "better_response_id": st.sampled_from([0, 1]),
        "safer_response_id": st.sampled_from([0, 1]),
        "is_response_0_safe": st.booleans(),
        "is_response_1_safe": st.booleans(),
    }
).filter(lambda row: row["response_0"] != row["response_1"])  # the same text twice is invalid
PREFERENCE_KEYS = {"prompt", "response_0", "response_1", "better_response_id"}


@given(row=preference_rows, extra=extra_fields)
def test_valid_preference_rows_round_trip(row: dict, extra: dict) -> None:
    full = {**extra, **row}
    record = parse_record(full, "preference")
    assert record_to_row(record) == full
    assert parse_record(record_to_row(record), "preference") == record


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(rows=st.lists(preference_rows, min_size=1, max_size=5))
def test_jsonl_round_trip(tmp_path: Path, rows: list[dict]) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    records = load_records([str(path)], "preference")
    assert [record_to_row(record) for record in records] == rows


# Mutations of valid rows hit every validation branch far more often than fully random dicts.
mutated_rows = st.builds(
    lambda row, key, value, drop: (
        {k: v for k, v in row.items() if k != key} if drop else {**row, key: value}
    ),
    preference_rows,
    st.sampled_from(sorted(PREFERENCE_KEYS | {"safer_response_id", "is_response_0_safe"})),
    json_values,
    st.booleans(),
)


@given(
    row=mutated_rows | st.dictionaries(st.text(), json_values) | json_values,
    kind=st.sampled_from(["supervised", "preference", "prompt"]),
)
def test_any_row_parses_or_raises_record_error(row: object, kind: str) -> None:
    try:
        record = parse_record(row, kind)  # type: ignore[arg-type]
    except RecordError as error:
        assert str(error)
    else:
        assert record.prompt.strip()


lengths = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6)


def _sequence(length: int, offset: int) -> torch.Tensor:
    return torch.arange(offset + 1, offset + 1 + length)  # never the pad id 0


@given(lengths=lengths, prompt_lengths=st.data())
def test_supervised_collation_invariants(lengths: list[int], prompt_lengths: st.DataObject) -> None:
    examples = []
    for i, length in enumerate(lengths):
        cut = prompt_lengths.draw(st.integers(min_value=0, max_value=length))
        mask = torch.arange(length) >= cut
        examples.append(SupervisedExample(_sequence(length, 100 * i), mask))
    batch = SupervisedCollator(pad_token_id=0)(examples)
    assert batch.input_ids.shape == (len(lengths), max(lengths))
    assert batch.attention_mask.sum(dim=1).tolist() == lengths
    assert not (batch.loss_mask & ~batch.attention_mask).any()  # loss only on real tokens
    assert (batch.input_ids[~batch.attention_mask] == 0).all()
    for row, example in zip(range(len(examples)), examples, strict=True):
        length = len(example.input_ids)
        assert torch.equal(batch.input_ids[row, :length], example.input_ids)  # right padded
        assert torch.equal(batch.loss_mask[row, :length], example.loss_mask)


@given(lengths=lengths)
def test_prompt_collation_left_pads(lengths: list[int]) -> None:
    examples = [PromptExample(_sequence(n, 100 * i)) for i, n in enumerate(lengths)]
    batch = PromptCollator(pad_token_id=0)(examples)
    assert batch.attention_mask[:, -1].all()  # every row ends at the last column
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        assert torch.equal(batch.input_ids[row, -length:], example.input_ids)
        assert not batch.attention_mask[row, : batch.input_ids.shape[1] - length].any()


@given(better=lengths, worse=st.data())
def test_pair_collation_shares_length(better: list[int], worse: st.DataObject) -> None:
    worse_lengths = worse.draw(
        st.lists(st.integers(1, 12), min_size=len(better), max_size=len(better))
    )
    examples = [
        PreferenceExample(_sequence(b, 0), _sequence(w, 50))
        for b, w in zip(better, worse_lengths, strict=True)
    ]
    batch = PreferenceCollator(pad_token_id=0)(examples)
    width = max(better + worse_lengths)
    assert batch.better_input_ids.shape == batch.worse_input_ids.shape == (len(better), width)
    assert batch.better_attention_mask.sum(dim=1).tolist() == better
    assert batch.worse_attention_mask.sum(dim=1).tolist() == worse_lengths
    # one forward pass over both halves is possible
    assert torch.cat([batch.better_input_ids, batch.worse_input_ids]).shape == (
        2 * len(better),
        width,
    )
