"""Dataset specs, the registry, and reading rows from JSONL, Parquet, folders and the hub."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import datasets
import pytest

from safe_rlhf_lightning.data import (
    DatasetSpec,
    PreferenceRecord,
    PromptRecord,
    RecordError,
    SupervisedRecord,
    load_records,
    parse_spec,
    record_to_row,
)

from .conftest import preference_row, supervised_row, write_jsonl

# ----------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("PKU-SafeRLHF/train", DatasetSpec("PKU-SafeRLHF/train")),
        ("alpaca:0.5", DatasetSpec("alpaca", 0.5)),
        ("alpaca:2:/data/alpaca", DatasetSpec("alpaca", 2.0, "/data/alpaca")),
        ("alpaca::/data/alpaca", DatasetSpec("alpaca", 1.0, "/data/alpaca")),
        ("data/pairs.jsonl:1.5", DatasetSpec("data/pairs.jsonl", 1.5)),
        ("PKU-SafeRLHF/train@v0", DatasetSpec("PKU-SafeRLHF/train", revision="v0")),
        ("hh-rlhf/test@a1b2:0.5", DatasetSpec("hh-rlhf/test", 0.5, revision="a1b2")),
        ("data/run@2/pairs.jsonl", DatasetSpec("data/run@2/pairs.jsonl")),  # a path keeps its @
    ],
)
def test_parse_spec(text: str, spec: DatasetSpec) -> None:
    assert parse_spec(text) == spec


def test_parse_spec_expands_home() -> None:
    assert parse_spec("alpaca:1:~/alpaca").path == str(Path.home() / "alpaca")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:1:b:c", "expected name[:proportion[:path]]"),
        (":0.5", "expected name[:proportion[:path]]"),
        ("alpaca:half", "proportion 'half' is not a number"),
        ("alpaca:0", "proportion must be a finite number > 0, got 0.0"),
        ("alpaca:-1", "proportion must be a finite number > 0, got -1.0"),
        ("alpaca:nan", "proportion must be a finite number > 0"),
        ("alpaca:1:", "the path after the second ':' is empty"),
        ("alpaca@", "the revision after '@' is empty"),
        ("benchmark-sft/train@v1", "'benchmark-sft/train' is a local file, it has no revisions"),
        ("alpaca@v1:1:/data/alpaca", "cannot go with a local path"),
    ],
)
def test_bad_spec(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid dataset spec") as caught:
        parse_spec(text)
    assert message in str(caught.value)


# ----------------------------------------------------------------------------- JSONL


def test_jsonl_records_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    lines = [preference_row(0), preference_row(1)]
    path.write_text("\n" + "\n".join(map(json.dumps, lines)) + "\n\n")
    records = load_records([str(path)], "preference")
    assert [record.origin.location for record in records] == ["line 2", "line 3"]
    assert all(isinstance(record, PreferenceRecord) for record in records)


def _write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


GOOD = (json.dumps(preference_row()) + "\n").encode()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [GOOD, b'{"prompt": "hi", \n'],
            "line 2: invalid JSON (Expecting property name enclosed in double quotes",
        ),
        (
            [GOOD, GOOD[:40]],
            "line 2: invalid JSON (Unterminated string starting at, column 12) (the last line is",
        ),
        ([GOOD, b"[1, 2]\n"], "line 2: must be a JSON object, got a JSON list"),
        ([GOOD, b'"just text"\n'], "line 2: must be a JSON object, got a JSON str"),
        ([GOOD, b'{"prompt": "caf\xe9"}\n'], "line 2: is not valid UTF-8 (byte 0xe9 at column 16)"),
        (
            [GOOD, (json.dumps(preference_row(better_response_id=2)) + "\n").encode()],
            "line 2: field 'better_response_id' must be 0 or 1, got 2",
        ),
    ],
)
def test_bad_jsonl_lines(tmp_path: Path, lines: list[bytes], message: str) -> None:
    path = _write_lines(tmp_path / "pairs.jsonl", lines)
    with pytest.raises(RecordError) as caught:
        load_records([str(path)], "preference")
    assert str(caught.value).startswith(f"{path} ")
    assert message in str(caught.value)


def test_truncated_last_line_says_so(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "pairs.jsonl", [GOOD, GOOD, GOOD[:-20]])
    with pytest.raises(RecordError, match=r"line 3: invalid JSON.*truncated file\?"):
        load_records([str(path)], "preference")


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_jsonl_file_is_an_error_even_when_skipping(tmp_path: Path, content: bytes) -> None:
    path = _write_lines(tmp_path / "empty.jsonl", [content])
    with pytest.raises(RecordError, match=rf"{path}: the file is empty"):
        load_records([str(path)], "prompt", skip_bad_records=True)


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + GOOD])
    assert len(load_records([str(path)], "preference")) == 1


# ----------------------------------------------------------------------------- registry


def test_registered_benchmark_files(data_root: Path) -> None:
    sft = load_records(["benchmark-sft/train"], "supervised", data_root=data_root)
    assert len(sft) == 10 and isinstance(sft[0], SupervisedRecord)
    pairs = load_records(["benchmark-preference/test"], "preference", data_root=data_root)
    assert len(pairs) == 4 and isinstance(pairs[0], PreferenceRecord)
    assert pairs[0].origin.source == str(data_root / "preference_test.jsonl")
    prompts = load_records(["benchmark-prompts/train"], "prompt", data_root=str(data_root))
    assert len(prompts) == 10 and isinstance(prompts[0], PromptRecord)
    # preference and supervised sources double as prompt sources
    as_prompts = load_records(["benchmark-preference/train"], "prompt", data_root=data_root)
    assert [r.prompt for r in as_prompts] == [preference_row(i)["prompt"] for i in range(10)]


def test_benchmark_name_needs_data_root() -> None:
    with pytest.raises(ValueError, match="no data_root was given"):
        load_records(["benchmark-sft/train"], "supervised")


def test_prompt_source_cannot_be_read_as_preferences(data_root: Path) -> None:
    with pytest.raises(ValueError, match="holds prompt records and cannot be read as preference"):
        load_records(["benchmark-prompts/train"], "preference", data_root=data_root)


def test_unknown_name_lists_registered_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'no-such-set'") as caught:
        load_records(["no-such-set"], "prompt")
    assert "PKU-SafeRLHF/train" in str(caught.value) and "alpaca" in str(caught.value)


def test_missing_local_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl does not exist"):
        load_records(["/nonexistent/missing.jsonl"], "prompt")


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replace the hub with small in-memory tables; records the calls made."""
    calls: list[tuple[Any, ...]] = []
    tables = {
        "PKU-Alignment/PKU-SafeRLHF": [preference_row(i) for i in range(6)],
        "PKU-Alignment/PKU-SafeRLHF-30K": [preference_row(i) for i in range(3)],
        "tatsu-lab/alpaca": [
            {"instruction": "Name a fruit.", "input": "", "output": "Apple.", "text": "t0"},
            {"instruction": "Translate:", "input": "bonjour", "output": "hello", "text": "t1"},
        ],
    }

    def load_dataset(path: str, *args: Any, split: str | None = None, **kwargs: Any) -> Any:
        calls.append((path, split))
        return datasets.Dataset.from_list(tables[path])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_pku_saferlhf_is_loaded_from_the_hub(fake_hub: list) -> None:
    records = load_records(["PKU-SafeRLHF/train"], "preference")
    assert fake_hub == [("PKU-Alignment/PKU-SafeRLHF", "train")]
    assert len(records) == 6
    assert record_to_row(records[2]) == preference_row(2)
    assert records[2].origin.source == "PKU-Alignment/PKU-SafeRLHF[train]"
    assert records[2].origin.location == "row 2"
    load_records(["PKU-SafeRLHF-30K/test"], "prompt")
    assert fake_hub[-1] == ("PKU-Alignment/PKU-SafeRLHF-30K", "test")


def test_hub_errors_name_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [preference_row(0), preference_row(1, safer_response_id=5)]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    message = "PKU-Alignment/PKU-SafeRLHF[test] row 1: field 'safer_response_id' must be 0 or 1"
    with pytest.raises(RecordError, match=re.escape(message)):
        load_records(["PKU-SafeRLHF/test"], "preference")


def test_alpaca_field_mapping(fake_hub: list) -> None:
    records = load_records(["alpaca"], "supervised")
    assert fake_hub == [("tatsu-lab/alpaca", "train")]
    assert [(r.prompt, r.response) for r in records] == [
        ("Name a fruit.", "Apple."),
        ("Translate: bonjour", "hello"),
    ]
    assert records[1].extra == {"text": "t1"}
    assert [r.prompt for r in load_records(["alpaca"], "prompt")][1] == "Translate: bonjour"


def test_alpaca_missing_output_names_the_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "alpaca.jsonl", [{"instruction": "Hi", "input": "", "output": ""}]
    )
    with pytest.raises(RecordError, match="line 1: field 'output' must be a non-empty string"):
        load_records([f"alpaca:1:{path}"], "supervised")


# ----------------------------------------------------------------------------- local formats


def test_save_to_disk_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    datasets.Dataset.from_list([preference_row(i) for i in range(5)]).save_to_disk(str(folder))
    records = load_records([str(folder)], "preference")
    assert len(records) == 5 and records[4].prompt == preference_row(4)["prompt"]
    assert records[4].extra["response_0_harm_category"] == {"Violence": False}


def test_save_to_disk_dataset_dict_as_a_local_copy_of_a_hub_set(tmp_path: Path) -> None:
    folder = tmp_path / "pku"
    datasets.DatasetDict(
        train=datasets.Dataset.from_list([preference_row(i) for i in range(4)]),
        test=datasets.Dataset.from_list([preference_row(9)]),
    ).save_to_disk(str(folder))
    test = load_records([f"PKU-SafeRLHF/test:1:{folder}"], "preference")
    assert [r.prompt for r in test] == [preference_row(9)["prompt"]]
    assert len(load_records([f"PKU-SafeRLHF/train::{folder}"], "preference")) == 4


def test_parquet_file_and_plain_data_folder(tmp_path: Path) -> None:
    table = datasets.Dataset.from_list([supervised_row(i) for i in range(3)])
    table.to_parquet(str(tmp_path / "sft.parquet"))
    records = load_records([str(tmp_path / "sft.parquet")], "supervised")
    assert [r.response for r in records] == [supervised_row(i)["response"] for i in range(3)]
    assert records[1].origin.location == "row 1"

    folder = tmp_path / "folder"
    write_jsonl(folder / "train.jsonl", [supervised_row(i) for i in range(4)])
    assert len(load_records([str(folder)], "supervised")) == 4


def test_json_array_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps([{"prompt": "a?"}, {"prompt": "b?"}]))
    assert [r.prompt for r in load_records([str(path)], "prompt")] == ["a?", "b?"]


def test_local_alpaca_layout_is_detected(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "demo.jsonl", [{"instruction": "Hi", "output": "Hello!"}])
    assert load_records([str(path)], "supervised")[0].prompt == "Hi"


def _unreachable_hub(monkeypatch: pytest.MonkeyPatch, offline: bool) -> None:
    """``datasets`` as it behaves for a hub dataset it cannot have (its own error text)."""

    def load_dataset(path: str, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)


def test_an_uncached_hub_dataset_is_one_line_naming_the_spec_and_the_ways_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _unreachable_hub(monkeypatch, offline=True)
    with pytest.raises(RecordError) as caught:
        load_records(["PKU-SafeRLHF-v0/train:0.5"], "preference")
    message = str(caught.value)
    assert message.startswith(
        "dataset 'PKU-SafeRLHF-v0/train': PKU-Alignment/PKU-SafeRLHF@v0[train] is not in the "
        "local datasets cache and hub access is off (HF_DATASETS_OFFLINE=1)"
    )
    assert "with HF_DATASETS_OFFLINE=0" in message
    assert "--revision v0 --local-dir /path/to/copy" in message
    assert message.endswith("'PKU-SafeRLHF-v0/train:0.5:/path/to/copy'")
    assert "\n" not in message


def test_an_unreachable_hub_online_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _unreachable_hub(monkeypatch, offline=False)
    with pytest.raises(RecordError, match=r"^dataset 'alpaca': cannot reach tatsu-lab/alpaca"):
        load_records(["alpaca"], "supervised")
