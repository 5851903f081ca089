"""The families comparison: RL-based (Safe RLHF) and RL-free (SACPO, P-SACPO, C-DPO) policies
beside SFT, from one run of the eval stage (``stage.policies``).

The eval stage samples every policy on the same held-out prompts with the same seed and scores
each response with the benchmark's oracle (``samples_<policy>.jsonl``). Here, per prompt kind
(benign, dual-use, harmful): each policy's harmful ratio and helpfulness, and its paired
difference against each baseline (SFT, Safe RLHF) over the same prompts with its standard error
(``sweep_summary``'s rule and verdicts); and the wall time of the stages behind each policy, read
from their ``train.log``. Model-free and torch-free.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..files import write_json_atomic, write_text_atomic
from .sweep_summary import NOISE_SE, paired_verdict

KINDS = ("benign", "dual_use", "harmful")  # the benchmark's prompt kinds (benchmark.world)
AXES = {"harmful_ratio": False, "helpfulness": True}  # axis -> higher is better
# Helpfulness on harmful prompts rises with harmful detail (the benchmark's tension): shown, but
# not marked better or worse.
UNJUDGED = ("helpfulness", "harmful")
_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


class FamiliesError(ValueError):
    """A missing or inconsistent input of the comparison, named."""


@dataclass(frozen=True)
class Family:
    """A policy of the evaluation and the stage folders (next to the eval folder) behind it."""

    name: str
    stages: tuple[str, ...]


def read_samples(eval_dir: Path, policy: str) -> list[dict[str, Any]]:
    """The eval stage's oracle-scored samples of ``policy`` (``samples_<policy>.jsonl``)."""
    path = eval_dir / f"samples_{policy}.jsonl"
    if not path.is_file():
        raise FamiliesError(f"{path} is missing: is {policy!r} one of the eval's stage.policies?")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _harmful(sample: Mapping[str, Any]) -> float:
    return float(not sample["oracle_is_safe"])


def metrics_by_kind(samples: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per prompt kind: harmful ratio (share of responses the oracle finds unsafe), mean
    oracle helpfulness, and the number of prompts."""
    table = {}
    for kind in KINDS:
        rows = [s for s in samples if s["oracle_prompt_kind"] == kind]
        if rows:
            table[kind] = {
                "harmful_ratio": statistics.fmean(_harmful(s) for s in rows),
                "helpfulness": statistics.fmean(s["oracle_helpfulness"] for s in rows),
                "prompts": float(len(rows)),
            }
    return table


def paired_by_kind(
    samples: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per prompt kind and axis: the mean over prompts of (policy - baseline), its standard
    error and the verdict (``sweep_summary.paired_verdict``). Both must have answered the same
    prompts in the same order (the eval stage's samples do)."""
    if [s["prompt"] for s in samples] != [s["prompt"] for s in baseline]:
        raise FamiliesError("the two policies' samples are not of the same prompts in one order")
    paired = {}
    for kind in KINDS:
        pairs = [
            (a, b)
            for a, b in zip(samples, baseline, strict=True)
            if a["oracle_prompt_kind"] == kind
        ]
        if len(pairs) < 2:
            continue
        paired[kind] = {
            "harmful_ratio": paired_verdict([_harmful(a) - _harmful(b) for a, b in pairs], False),
            "helpfulness": paired_verdict(
                [a["oracle_helpfulness"] - b["oracle_helpfulness"] for a, b in pairs], True
            ),
        }
    return paired


def stage_seconds(folder: Path) -> float | None:
    """Wall time of one stage run: from the first to the last timestamped line of its
    ``train.log`` (training and its own oracle evaluation); None without a log."""
    log = folder / "train.log"
    if not log.is_file():
        return None
    stamps = [m.group(1) for line in log.read_text().splitlines() if (m := _STAMP.match(line))]
    if len(stamps) < 2:
        return None
    start, end = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return (end - start).total_seconds()


def compare_families(
    eval_dir: Path, families: Sequence[Family], baselines: Sequence[str]
) -> dict[str, Any]:
    """Everything the report shows, as plain values (also written as ``families.json``)."""
    samples = {f.name: read_samples(eval_dir, f.name) for f in families}
    for name in baselines:
        if name not in samples:
            raise FamiliesError(f"baseline {name!r} is not among the families {list(samples)}")
    result: dict[str, Any] = {"policies": {}}
    for family in families:
        seconds = {stage: stage_seconds(eval_dir.parent / stage) for stage in family.stages}
        result["policies"][family.name] = {
            "metrics": metrics_by_kind(samples[family.name]),
            "paired": {
                base: paired_by_kind(samples[family.name], samples[base])
                for base in baselines
                if base != family.name
            },
            "stage_seconds": seconds,
            "wall_seconds": sum(s for s in seconds.values() if s is not None),
        }
    return result


def _diff(cell: Mapping[str, Any], judged: bool = True) -> str:
    mark = {"better": " ✓", "worse": " ✗"}.get(cell["verdict"], "") if judged else ""
    return f"{cell['diff']:+.3f} ± {cell['se']:.3f}{mark}"


def families_markdown(result: Mapping[str, Any], baselines: Sequence[str]) -> str:
    policies = result["policies"]
    lines = ["# RL-based and RL-free safe alignment, side by side", ""]
    lines += [
        "Held-out prompts of the embedded benchmark, one sampled response per policy and prompt "
        "(the same prompts and sampling seed for every policy), judged by the oracle. The "
        "trade-off plot of the same evaluation: ![trade-off](policy_plane.png); its full "
        "report: [report.md](report.md).",
        "",
        "## Harmful ratio ↓ and helpfulness ↑ per prompt kind",
        "",
        *_table_header(""),
    ]
    for name, entry in policies.items():
        metrics = entry["metrics"]
        cells = [f"{metrics[k][axis]:.3f}" if k in metrics else "–" for axis in AXES for k in KINDS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for base in baselines:
        lines += [
            "",
            f"## Paired differences against {base} (policy − {base} on the same prompts, ± "
            f"standard error; ✓ better / ✗ worse by at least {NOISE_SE:g} standard errors; "
            "helpfulness on harmful prompts, which harmful detail raises, is left unmarked)",
            "",
            *_table_header("Δ "),
        ]
        for name, entry in policies.items():
            paired = entry["paired"].get(base)
            if paired is None:
                continue
            cells = [
                _diff(paired[k][axis], (axis, k) != UNJUDGED) if k in paired else "–"
                for axis in AXES
                for k in KINDS
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Wall time of the stages behind each policy",
        "",
        "Each stage's run from its first to its last log line (training and its own oracle "
        "evaluation), as it ran on this machine; stages shared by several policies (R and C) "
        "count for each.",
        "",
        "| policy | wall time (s) | stages (s) |",
        "|---|---:|---|",
    ]
    for name, entry in policies.items():
        parts = ", ".join(
            f"{stage} {'not timed' if s is None else f'{s:.0f}'}"
            for stage, s in entry["stage_seconds"].items()
        )
        lines.append(f"| {name} | {entry['wall_seconds']:.0f} | {parts} |")
    return "\n".join(lines) + "\n"


def write_families_report(
    eval_dir: Path, families: Sequence[Family], baselines: Sequence[str]
) -> Path:
    """``families.md`` and ``families.json`` in ``eval_dir``; returns the Markdown's path."""
    result = compare_families(eval_dir, families, baselines)
    write_json_atomic(eval_dir / "families.json", result)
    return write_text_atomic(eval_dir / "families.md", families_markdown(result, baselines))


def _table_header(prefix: str) -> list[str]:
    """A table's two header lines: the policy, then harmful ratio and helpfulness per prompt
    kind, each column named with ``prefix``."""
    columns = [f"{prefix}{axis} ({k})" for axis in ("harmful ratio", "helpfulness") for k in KINDS]
    return ["| policy | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
