"""Files that grow by appends (PPO's ``samples_train.jsonl``): a kill inside an append leaves at
most a torn last line, which the reader drops, so a resumed run goes on instead of failing to
parse its own log."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from safe_rlhf_lightning.data import RecordError, read_jsonl_rows
from safe_rlhf_lightning.files import append_jsonl

ROWS = [{"step": 0, "response": "Knead the dough."}, {"step": 1, "response": "Ça coûte 5 €."}]


def test_appends_add_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, ROWS[:1])
    append_jsonl(path, ROWS[1:])
    append_jsonl(path, [])
    text = path.read_text(encoding="utf-8")
    assert text == "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS)
    assert read_jsonl_rows(path) == ROWS


def test_every_torn_tail_is_dropped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cut the last append at every byte (inside a multi-byte character too): the whole rows
    before it come back, and the warning says how many bytes went."""
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, ROWS[:1])
    whole = path.read_bytes()
    line = (json.dumps(ROWS[1], ensure_ascii=False) + "\n").encode("utf-8")
    for cut in range(1, len(line) - 1):  # the line without its last '}' and newline, or less
        path.write_bytes(whole + line[:cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="safe_rlhf_lightning.files"):
            assert read_jsonl_rows(path) == ROWS[:1], cut
        assert f"dropped a torn last line ({cut} bytes" in caplog.text
        assert "after 1 rows" in caplog.text


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]), encoding="utf-8")
    assert read_jsonl_rows(path) == ROWS


def test_a_bad_line_before_the_last_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{oops\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(RecordError, match=rf"^{path} line 2: invalid JSON"):
        read_jsonl_rows(path)


def test_a_resumed_ppo_run_continues_a_sample_file_with_a_torn_tail(tmp_path: Path) -> None:
    """The run was killed inside the append of step 2, after its checkpoint of step 1: on
    resume the torn line and the rows of steps it redoes go, and the new rows follow."""
    from safe_rlhf_lightning.cli.ppo_lag import _SampleFile

    path = tmp_path / "samples_train.jsonl"
    append_jsonl(path, [{"step": step, "response": f"r{step}"} for step in range(3)])
    with path.open("ab") as file:
        file.write(b'{"step": 3, "respo')  # the torn append
    sink = _SampleFile(path, lambda: SimpleNamespace(is_global_zero=True, loggers=[]))
    sink(2, [{"step": 2, "response": "again"}])
    sink(3, [{"step": 3, "response": "new"}])
    assert read_jsonl_rows(path) == [
        {"step": 0, "response": "r0"},
        {"step": 1, "response": "r1"},
        {"step": 2, "response": "again"},
        {"step": 3, "response": "new"},
    ]
    assert path.read_bytes().endswith(b"}\n")
