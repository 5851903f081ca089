"""Loading records from dataset specs: validation, skipping bad rows, and mixing by proportion."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from safe_rlhf_lightning.data.records import (
    Origin,
    Record,
    RecordError,
    RecordKind,
    check_safety_consistency,
    parse_record,
    require_safety_labels,
)
from safe_rlhf_lightning.data.sources import (
    READABLE_AS,
    DatasetSpec,
    decode_json_line,
    parse_spec,
    resolve,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class SourceStats:
    """What one spec contributed: valid rows read, bad rows skipped, records after mixing."""

    spec: DatasetSpec
    label: str
    num_valid: int
    num_skipped: int
    num_selected: int


def read_source(
    spec: DatasetSpec,
    kind: RecordKind,
    *,
    data_root: str | Path | None = None,
    skip_bad_records: bool = False,
) -> tuple[list[Record], int, str]:
    """All valid records of one source, the number of bad rows skipped, and the source's label.

    A bad row raises its :class:`RecordError`, or with ``skip_bad_records`` is counted and
    skipped (one warning per source). An empty JSONL file always raises.
    """
    resolved = resolve(spec, data_root)
    if resolved.kind is not None and kind not in READABLE_AS[resolved.kind]:
        raise ValueError(
            f"dataset {spec.name!r} holds {resolved.kind} records and cannot be read as {kind} "
            f"records (it can be read as: {', '.join(READABLE_AS[resolved.kind])})"
        )
    records: list[Record] = []
    skipped: list[RecordError] = []
    for origin, row in resolved.rows():
        try:
            if isinstance(row, RecordError):
                raise row
            if resolved.adapter is not None and isinstance(row, Mapping):
                row = resolved.adapter(row, origin)
            records.append(parse_record(row, kind, origin))
        except RecordError as error:
            if not skip_bad_records:
                raise
            skipped.append(error)
    if skipped:
        logger.warning(
            "%s: skipped %d bad of %d rows (first: %s)",
            resolved.label,
            len(skipped),
            len(skipped) + len(records),
            skipped[0],
        )
    return records, len(skipped), resolved.label


def select_proportion(items: Sequence[T], proportion: float, rng: np.random.Generator) -> list[T]:
    """round(proportion * n) items: the whole source floor(p) times, then a random subset
    (without replacement) for the remainder, as upstream safe-rlhf mixes datasets."""
    if proportion <= 0:
        raise ValueError(f"proportion must be > 0, got {proportion}")
    size = len(items)
    if size == 0:
        return []
    repeats, remainder = divmod(round(size * proportion), size)
    chosen = list(items) * repeats
    if remainder:
        chosen.extend(items[i] for i in rng.choice(size, size=remainder, replace=False).tolist())
    return chosen


def mix_sources(
    groups: Sequence[Sequence[T]], proportions: Sequence[float], seed: int
) -> list[list[T]]:
    """Apply each group's proportion with its own generator spawned from ``seed`` (so adding a
    source does not change what the others select)."""
    if len(groups) != len(proportions):
        raise ValueError(f"{len(groups)} groups but {len(proportions)} proportions")
    seeds = np.random.SeedSequence(seed).spawn(len(groups))
    return [
        select_proportion(group, proportion, np.random.default_rng(child))
        for group, proportion, child in zip(groups, proportions, seeds, strict=True)
    ]


def no_usable_records(sources: Sequence[str], removed: Mapping[str, int]) -> RecordError:
    """The error for data that kept nothing of ``sources``, with how many records each reason
    removed (reasons with a count of 0 are left out), e.g. ``no usable records in
    data/pairs.jsonl: 3 skipped as bad records, 2 dropped as identical after tokenization``."""
    reasons = ", ".join(f"{count} {reason}" for reason, count in removed.items() if count)
    return RecordError(f"no usable records in {', '.join(sources)}: {reasons or 'no rows'}")


def load_records_with_stats(
    specs: Sequence[str | DatasetSpec],
    kind: RecordKind,
    *,
    data_root: str | Path | None = None,
    skip_bad_records: bool = False,
    seed: int = 42,
) -> tuple[list[Record], list[SourceStats]]:
    """:func:`load_records`, also returning what each source contributed. Specs that give no
    record at all (every row skipped) are a :class:`RecordError`."""
    parsed = [parse_spec(spec) if isinstance(spec, str) else spec for spec in specs]
    if not parsed:
        raise ValueError("no dataset specs given")
    groups, skipped, labels = [], [], []
    for spec in parsed:
        records, num_skipped, label = read_source(
            spec, kind, data_root=data_root, skip_bad_records=skip_bad_records
        )
        groups.append(records)
        skipped.append(num_skipped)
        labels.append(label)
    selected = mix_sources(groups, [spec.proportion for spec in parsed], seed)
    stats = []
    for spec, label, group, num_skipped, chosen in zip(
        parsed, labels, groups, skipped, selected, strict=True
    ):
        stats.append(SourceStats(spec, label, len(group), num_skipped, len(chosen)))
        logger.info(
            "%s (%s): %d valid %s records, %d skipped, proportion %g -> %d",
            spec.name,
            label,
            len(group),
            kind,
            num_skipped,
            spec.proportion,
            len(chosen),
        )
        if not chosen:
            logger.warning("%s gave no records", spec.name)
    records = [record for chosen in selected for record in chosen]
    if not records:
        raise no_usable_records(
            labels,
            {
                "skipped as bad records": sum(skipped),
                "valid but left out by a proportion below 1": sum(len(g) for g in groups),
            },
        )
    return records, stats


def load_records(
    specs: Sequence[str | DatasetSpec],
    kind: RecordKind,
    *,
    data_root: str | Path | None = None,
    skip_bad_records: bool = False,
    seed: int = 42,
) -> list[Record]:
    """Load, validate and mix records of ``kind`` from dataset specs, concatenated in spec order.

    Args:
        specs: ``name[:proportion[:path]]`` strings or :class:`DatasetSpec` objects.
        kind: ``supervised``, ``preference`` or ``prompt`` (any source with a prompt field).
        data_root: folder holding the embedded benchmark's files (``benchmark-*`` names).
        skip_bad_records: skip and count rows that fail validation instead of raising.
        seed: makes the random subsets of fractional proportions reproducible.

    Raises:
        RecordError: a bad row (unless skipped), or no record left at all, naming the sources.
    """
    records, _ = load_records_with_stats(
        specs, kind, data_root=data_root, skip_bad_records=skip_bad_records, seed=seed
    )
    return records


def check_sources(
    specs: Sequence[str | DatasetSpec],
    kind: RecordKind,
    *,
    key: str,
    data_root: str | Path | None = None,
    skip_bad_records: bool = False,
    seed: int = 42,
    safety_labels: bool = False,
) -> list[SourceStats]:
    """Read and validate every record of ``specs`` as :func:`load_records` does, without a
    tokenizer, so that a run can refuse its data before it loads any model. With
    ``safety_labels`` (the cost stage) every pair must also carry consistent safety labels.

    Every failure (a bad record, an unknown name, a missing file, a hub dataset not in the
    cache, no usable records) is a one-line :class:`RecordError` that starts with
    ``config key '<key>'``, the setting that lists ``specs`` (e.g. ``data.preference_train``).
    Records that only tokenization can reject (too long a prompt, a pair identical once
    tokenized) are left to the datasets.
    """
    if safety_labels and kind != "preference":
        raise ValueError(f"safety labels are only checked on preference records, not {kind}")
    try:
        records, stats = load_records_with_stats(
            specs, kind, data_root=data_root, skip_bad_records=skip_bad_records, seed=seed
        )
        if safety_labels:
            require_safety_labels(records)  # type: ignore[arg-type]
            if not skip_bad_records:  # else the dataset skips and counts them
                for record in records:
                    check_safety_consistency(record)  # type: ignore[arg-type]
    except (ValueError, OSError) as error:  # RecordError is a ValueError
        raise RecordError(str(error), origin=f"config key '{key}'") from None
    return stats


def read_jsonl_rows(path: str | Path) -> list[Any]:
    """The rows of a JSON Lines file that grows by ``files.append_jsonl`` (e.g. a PPO run's
    ``samples_train.jsonl``).

    A last line without its newline that does not decode is the torn end of an append cut short
    by a kill or a full disk: it is dropped with a warning saying how many bytes went. Any other
    bad line is a :class:`RecordError` naming the file and line; blank lines are ignored.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    numbered = [(number, raw + b"\n") for number, raw in enumerate(lines, 1) if raw.strip()]
    if tail.strip():
        row = decode_json_line(tail, Origin(str(path), f"line {len(lines) + 1}"))
        if isinstance(row, RecordError):
            logger.warning(
                "%s: dropped a torn last line (%d bytes, an append cut short) after %d rows",
                path,
                len(tail),
                len(numbered),
            )
        else:
            numbered.append((len(lines) + 1, tail))
    rows = []
    for number, raw in numbered:
        row = decode_json_line(raw, Origin(str(path), f"line {number}"))
        if isinstance(row, RecordError):
            raise row
        rows.append(row)
    return rows
