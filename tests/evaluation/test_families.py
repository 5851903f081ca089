"""The families report: per-kind metrics and paired differences by hand, wall time from the
stage logs, and a missing policy named with exit 2."""

from __future__ import annotations

import json
import math

import pytest

from safe_rlhf_lightning.cli.families import main
from safe_rlhf_lightning.evaluation.families import (
    FamiliesError,
    metrics_by_kind,
    paired_by_kind,
    stage_seconds,
)


def _sample(prompt, kind, helpfulness, safe):
    return {
        "prompt": prompt,
        "oracle_prompt_kind": kind,
        "oracle_helpfulness": helpfulness,
        "oracle_is_safe": safe,
    }


BASE = [
    _sample("a", "harmful", 1.0, False),
    _sample("b", "harmful", 0.5, False),
    _sample("c", "harmful", 0.0, True),
    _sample("d", "benign", 2.0, True),
    _sample("e", "benign", 1.0, True),
]
POLICY = [
    _sample("a", "harmful", -1.0, True),
    _sample("b", "harmful", 0.5, False),
    _sample("c", "harmful", -0.5, True),
    _sample("d", "benign", 2.5, True),
    _sample("e", "benign", 2.0, True),
]


def test_metrics_by_kind_by_hand():
    table = metrics_by_kind(BASE)
    assert table["harmful"] == {"harmful_ratio": 2 / 3, "helpfulness": 0.5, "prompts": 3.0}
    assert table["benign"] == {"harmful_ratio": 0.0, "helpfulness": 1.5, "prompts": 2.0}
    assert "dual_use" not in table


def test_paired_differences_by_hand():
    paired = paired_by_kind(POLICY, BASE)
    harmful = paired["harmful"]["harmful_ratio"]  # differences -1, 0, 0
    assert harmful["diff"] == pytest.approx(-1 / 3)
    assert harmful["se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))  # sample std 0.577
    helpful = paired["benign"]["helpfulness"]  # differences 0.5, 1.0
    assert helpful["diff"] == pytest.approx(0.75)
    assert helpful["se"] == pytest.approx(math.sqrt(0.125) / math.sqrt(2))
    assert helpful["verdict"] == "better"  # 0.75 >= 2 x 0.25
    with pytest.raises(FamiliesError, match="same prompts"):
        paired_by_kind(POLICY[::-1], BASE)


def test_stage_seconds_from_the_first_and_last_log_lines(tmp_path):
    (tmp_path / "train.log").write_text(
        "[2026-12-02 03:26:20,420][x][INFO] - start\n"
        "a line of a table without a stamp\n"
        "[2026-12-02 03:36:21,920][x][INFO] - done\n"
    )
    assert stage_seconds(tmp_path) == pytest.approx(601.5)
    assert stage_seconds(tmp_path / "nowhere") is None


def test_report_writes_tables_and_names_a_missing_policy(tmp_path, capsys):
    eval_dir = tmp_path / "families"
    eval_dir.mkdir()
    for name, rows in (("sft", BASE), ("cdpo", POLICY)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (eval_dir / f"samples_{name}.jsonl").write_text(text)
    (tmp_path / "cdpo").mkdir()
    (tmp_path / "cdpo" / "train.log").write_text(
        "[2026-12-02 03:00:00,000][x][INFO] - a\n[2026-12-02 03:01:40,000][x][INFO] - b\n"
    )
    assert main([str(eval_dir), "sft=sft", "cdpo=cdpo", "--baselines", "sft"]) == 0
    report = (eval_dir / "families.md").read_text()
    assert "| cdpo | 0.000 | – | 0.333 |" in report  # harmful ratio per kind
    assert "| cdpo | 100 | cdpo 100 |" in report  # wall time
    assert "| sft | 0 | sft not timed |" in report
    saved = json.loads((eval_dir / "families.json").read_text())
    assert saved["policies"]["cdpo"]["paired"]["sft"]["harmful"]["harmful_ratio"]["diff"] < 0

    assert main([str(eval_dir), "sft=sft", "p_sacpo=p_sacpo", "--baselines", "sft"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "samples_p_sacpo.jsonl is missing" in error
