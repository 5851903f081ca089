"""Collecting the next round's preference data from the current policy (Safe RLHF's rounds).

Between rounds the paper samples responses from the newest policy, has them labelled for
helpfulness and harmlessness, and adds them to the earlier data before retraining R and C; its
red-teaming favours prompts the model still answers unsafely (Dai et al. 2024, Section 4.1 and
Appendix C). Here:

1. a probe pass answers each candidate prompt once, and a judge (the simulated annotators'
   safety label on the embedded benchmark, or a cost model's sign elsewhere) flags the prompts
   still answered unsafely;
2. :func:`draw_prompts` draws the round's prompts with replacement, a flagged prompt
   ``unsafe_weight`` times as likely as another;
3. two responses per drawn prompt make a pair, labelled by the simulated annotators
   (``benchmark.labelled_pair_row``) or exported for people to label (:func:`rows_to_label`) and
   read back (:func:`read_labelled_rows`).

Everything here is a pure function of its inputs; sampling with models is the ``collect``
stage's runner (``cli/collect.py``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from .data import RecordError, load_records, record_to_row
from .data.records import check_safety_consistency

T = TypeVar("T")

LABEL_FIELDS = (
    "better_response_id",
    "safer_response_id",
    "is_response_0_safe",
    "is_response_1_safe",
)
"""The PKU-SafeRLHF fields that people fill in."""


def draw_prompts(
    prompts: Sequence[T],
    flagged: Sequence[bool],
    num_prompts: int,
    unsafe_weight: float,
    rng: random.Random,
) -> list[T]:
    """``num_prompts`` prompts drawn with replacement; a flagged prompt (answered unsafely in the
    probe) has ``unsafe_weight`` times the chance of an unflagged one.

    With a share ``u`` of flagged prompts, the expected flagged share of the draw is
    ``w·u / (w·u + 1 - u)`` for ``w = unsafe_weight`` (``u`` itself when ``w = 1``).
    """
    if len(prompts) != len(flagged):
        raise ValueError(f"{len(prompts)} prompts but {len(flagged)} flags")
    if not prompts:
        raise ValueError("no prompts to draw from")
    if unsafe_weight <= 0:
        raise ValueError(f"unsafe_weight must be > 0, got {unsafe_weight}")
    weights = [unsafe_weight if flag else 1.0 for flag in flagged]
    return rng.choices(list(prompts), weights=weights, k=num_prompts)


def expected_flagged_share(flagged_share: float, unsafe_weight: float) -> float:
    """The flagged share of a draw by :func:`draw_prompts`, in expectation."""
    weighted = unsafe_weight * flagged_share
    return weighted / (weighted + 1.0 - flagged_share)  # > 0 for unsafe_weight > 0


def split_pairs(
    prompts: Sequence[str], responses: Sequence[str]
) -> tuple[list[tuple[str, str, str]], int]:
    """Pairs ``(prompt, response_0, response_1)`` from two consecutive responses per prompt
    (``responses[2i]`` and ``responses[2i + 1]`` answer ``prompts[i]``), and how many pairs were
    left out because both responses were the same text (such a pair teaches neither model)."""
    if len(responses) != 2 * len(prompts):
        raise ValueError(
            f"{len(prompts)} prompts need {2 * len(prompts)} responses, got {len(responses)}"
        )
    pairs, identical = [], 0
    for index, prompt in enumerate(prompts):
        first, second = responses[2 * index], responses[2 * index + 1]
        if first == second:
            identical += 1
        else:
            pairs.append((prompt, first, second))
    return pairs, identical


class LabelsPending(Exception):
    """The pairs are exported and wait for people's labels (not an error: run again later)."""


def rows_to_label(pairs: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """PKU-SafeRLHF rows with every label left null, for people to fill in."""
    return [
        {"prompt": p, "response_0": r0, "response_1": r1, **dict.fromkeys(LABEL_FIELDS)}
        for p, r0, r1 in pairs
    ]


def read_pairs_to_label(path: str | Path) -> list[tuple[str, str, str]]:
    """The pairs of a file written from :func:`rows_to_label` (labels may be filled in or not)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
                pairs.append((row["prompt"], row["response_0"], row["response_1"]))
            except (ValueError, KeyError, TypeError) as error:
                origin = f"{path} line {line}"
                raise RecordError(f"not an exported pair ({error})", origin=origin) from None
    return pairs


def read_labelled_rows(
    path: str | Path, pairs: Sequence[tuple[str, str, str]], *, skip_bad_records: bool = False
) -> list[dict[str, Any]]:
    """The labelled file, checked: every row a valid PKU-SafeRLHF pair with consistent safety
    labels, and row ``i`` the ``i``-th exported pair (same prompt and responses). Errors name the
    file and line; with ``skip_bad_records`` invalid rows are skipped (the caller counts them
    through the returned length)."""
    path = Path(path)
    records = load_records([str(path)], "preference", skip_bad_records=skip_bad_records)
    if not skip_bad_records and len(records) != len(pairs):
        raise RecordError(
            f"{len(records)} labelled pairs, but {len(pairs)} were exported", origin=str(path)
        )
    exported = set(pairs)
    rows = []
    for record in records:
        if skip_bad_records and not record.has_safety_labels:
            continue  # helpfulness labelled, safety left blank: incomplete, skipped as asked
        check_safety_consistency(record)
        if (record.prompt, record.response_0, record.response_1) not in exported:
            raise RecordError(
                "prompt and responses are not among the exported pairs (edit only the label "
                "fields)",
                origin=record.origin,
            )
        rows.append(record_to_row(record))
    return rows
