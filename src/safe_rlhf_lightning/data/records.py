"""Record schemas (one text example each) and their validation.

Three kinds of record cross the data layer:

- :class:`SupervisedRecord`: a prompt and a demonstration response (SFT, Alpaca-style data).
- :class:`PreferenceRecord`: a prompt, two responses and the PKU-SafeRLHF labels
  (``better_response_id``, ``safer_response_id``, ``is_response_0_safe``,
  ``is_response_1_safe``); read by the reward model (helpfulness) and the cost model (harm).
- :class:`PromptRecord`: a prompt only (PPO rollouts, evaluation). Any row with a ``prompt``
  field can be read as one, so a preference or SFT dataset doubles as a prompt set.

Validation is strict on types, by decision:

- Texts must be ``str`` and not blank (whitespace only counts as empty).
- Response ids must be integers 0 or 1; a boolean is rejected (``True`` as an id is almost
  certainly a safety flag written into the wrong column).
- Safety flags must be real booleans (Python/NumPy ``bool``, JSON ``true``/``false``). The
  integers 0/1 are rejected as well: PKU-SafeRLHF and the embedded benchmark store real booleans,
  and a 0/1 in a flag column usually means a response id was written there.
- The two responses of a pair must differ (the same text twice is a record error).
- The three safety labels (``safer_response_id``, ``is_response_0_safe``,
  ``is_response_1_safe``) may all be null together: a pair labelled for helpfulness only (e.g.
  Anthropic HH-RLHF). Such a pair trains the reward model; the cost model refuses it. One or two
  null labels are an error.

Fields a schema does not name (``response_0_harm_category``, ``response_0_severity_level``,
``prompt_kind``, ``topic``, any ``oracle_*`` ...) are kept unchanged in ``extra``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

RecordKind = Literal["supervised", "preference", "prompt"]
RECORD_KINDS: tuple[RecordKind, ...] = ("supervised", "preference", "prompt")


@dataclass(frozen=True)
class Origin:
    """Where a row came from: ``source`` is a file path or hub name, ``location`` is
    ``line N`` (JSONL, 1-based) or ``row N`` (a ``datasets`` table, 0-based index)."""

    source: str
    location: str

    def __str__(self) -> str:
        return f"{self.source} {self.location}"


class RecordError(ValueError):
    """A row that does not fit its schema, e.g.
    ``data/pairs.jsonl line 7: field 'better_response_id' must be 0 or 1, got 2``, or a source
    that gives no usable rows (an empty file, a hub dataset that cannot be had, every row
    skipped). The CLI prints it in one line and exits with status 2."""

    def __init__(
        self, problem: str, *, origin: Origin | str | None = None, field: str | None = None
    ) -> None:
        self.problem = problem
        self.origin = origin
        self.field = field
        what = f"field '{field}' {problem}" if field is not None else problem
        super().__init__(f"{origin}: {what}" if origin is not None else what)


@dataclass(frozen=True)
class SupervisedRecord:
    prompt: str
    response: str
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    origin: Origin | None = field(default=None, compare=False)

    def as_prompt(self) -> PromptRecord:
        return PromptRecord(self.prompt, dict(self.extra), self.origin)


@dataclass(frozen=True)
class PreferenceRecord:
    """A PKU-SafeRLHF pair. Ids index the two responses (0 or 1). The safety labels are all
    ``None`` for a pair without them (see :attr:`has_safety_labels`)."""

    prompt: str
    response_0: str
    response_1: str
    better_response_id: int
    safer_response_id: int | None
    is_response_0_safe: bool | None
    is_response_1_safe: bool | None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    origin: Origin | None = field(default=None, compare=False)

    def response(self, response_id: int) -> str:
        return self.response_0 if response_id == 0 else self.response_1

    def is_safe(self, response_id: int) -> bool | None:
        return self.is_response_0_safe if response_id == 0 else self.is_response_1_safe

    @property
    def has_safety_labels(self) -> bool:
        return self.safer_response_id is not None

    def as_prompt(self) -> PromptRecord:
        return PromptRecord(self.prompt, dict(self.extra), self.origin)


@dataclass(frozen=True)
class PromptRecord:
    prompt: str
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    origin: Origin | None = field(default=None, compare=False)

    def as_prompt(self) -> PromptRecord:
        return self


Record = SupervisedRecord | PreferenceRecord | PromptRecord

SUPERVISED_FIELDS = ("prompt", "response")
PREFERENCE_FIELDS = (
    "prompt",
    "response_0",
    "response_1",
    "better_response_id",
    "safer_response_id",
    "is_response_0_safe",
    "is_response_1_safe",
)
PROMPT_FIELDS = ("prompt",)
SAFETY_LABEL_FIELDS = ("safer_response_id", "is_response_0_safe", "is_response_1_safe")
"""The labels the cost model needs; a helpfulness-only pair has all three null."""


def _describe(value: Any) -> str:
    """A short ``repr`` with the type, for 'expected vs found' messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _get(row: Mapping[str, Any], name: str, origin: Origin | str | None) -> Any:
    if name not in row:
        found = ", ".join(sorted(map(str, row))) or "none"
        raise RecordError(f"is missing (found fields: {found})", origin=origin, field=name)
    return row[name]


def require_text(row: Mapping[str, Any], name: str, origin: Origin | str | None = None) -> str:
    """The non-blank string in ``row[name]``, else a :class:`RecordError`."""
    value = _get(row, name, origin)
    if not isinstance(value, str):
        raise RecordError(f"must be a string, got {_describe(value)}", origin=origin, field=name)
    if not value.strip():
        raise RecordError(f"must be a non-empty string, got {value!r}", origin=origin, field=name)
    return value


def require_response_id(
    row: Mapping[str, Any], name: str, origin: Origin | str | None = None
) -> int:
    value = _get(row, name, origin)
    is_integer = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not is_integer or int(value) not in (0, 1):
        shown = value if is_integer else _describe(value)
        raise RecordError(f"must be 0 or 1, got {shown}", origin=origin, field=name)
    return int(value)


def require_bool(row: Mapping[str, Any], name: str, origin: Origin | str | None = None) -> bool:
    value = _get(row, name, origin)
    if not isinstance(value, bool | np.bool_):
        raise RecordError(
            f"must be a boolean (true/false), got {_describe(value)}", origin=origin, field=name
        )
    return bool(value)


def _require_mapping(row: Any, origin: Origin | str | None) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise RecordError(
            f"must be an object (a mapping of fields), got {_describe(row)}", origin=origin
        )
    return row


def _extra(row: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in known}


def parse_supervised(row: Any, origin: Origin | None = None) -> SupervisedRecord:
    row = _require_mapping(row, origin)
    return SupervisedRecord(
        prompt=require_text(row, "prompt", origin),
        response=require_text(row, "response", origin),
        extra=_extra(row, SUPERVISED_FIELDS),
        origin=origin,
    )


def parse_preference(row: Any, origin: Origin | None = None) -> PreferenceRecord:
    row = _require_mapping(row, origin)
    prompt = require_text(row, "prompt", origin)
    response_0 = require_text(row, "response_0", origin)
    response_1 = require_text(row, "response_1", origin)
    if response_1 == response_0:
        # The pair carries no preference, and the pairwise losses have no position where the
        # two sequences differ (upstream safe-rlhf rejects such a pair as well).
        raise RecordError(
            "is identical to response_0: a pair needs two different responses",
            origin=origin,
            field="response_1",
        )
    better_response_id = require_response_id(row, "better_response_id", origin)
    if all(_get(row, name, origin) is None for name in SAFETY_LABEL_FIELDS):
        safety: tuple[int | None, bool | None, bool | None] = (None, None, None)
    else:
        safety = (
            require_response_id(row, "safer_response_id", origin),
            require_bool(row, "is_response_0_safe", origin),
            require_bool(row, "is_response_1_safe", origin),
        )
    return PreferenceRecord(
        prompt,
        response_0,
        response_1,
        better_response_id,
        *safety,
        extra=_extra(row, PREFERENCE_FIELDS),
        origin=origin,
    )


def parse_prompt(row: Any, origin: Origin | None = None) -> PromptRecord:
    """Any row with a ``prompt`` field; every other field goes to ``extra``."""
    row = _require_mapping(row, origin)
    return PromptRecord(
        prompt=require_text(row, "prompt", origin),
        extra=_extra(row, PROMPT_FIELDS),
        origin=origin,
    )


_PARSERS = {"supervised": parse_supervised, "preference": parse_preference, "prompt": parse_prompt}


def parse_record(row: Any, kind: RecordKind, origin: Origin | None = None) -> Record:
    """Validate one row as a record of ``kind``; raises :class:`RecordError` and nothing else
    for a bad row."""
    if kind not in _PARSERS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {RECORD_KINDS}")
    return _PARSERS[kind](row, origin)


def record_to_row(record: Record) -> dict[str, Any]:
    """The flat row a record was parsed from (its schema fields plus ``extra``), e.g. to write
    JSONL in the same schema the loaders read."""
    if isinstance(record, SupervisedRecord):
        fields = {"prompt": record.prompt, "response": record.response}
    elif isinstance(record, PreferenceRecord):
        fields = {name: getattr(record, name) for name in PREFERENCE_FIELDS}
    else:
        fields = {"prompt": record.prompt}
    return {**fields, **record.extra}


def check_safety_consistency(record: PreferenceRecord) -> None:
    """Reject a pair whose safer response is labelled unsafe while the other is labelled safe,
    or a pair without safety labels.

    The cost model's ranking term and its sign terms would then pull in opposite directions
    (upstream safe-rlhf rejects the same case).
    """
    safer = record.safer_response_id
    if safer is None:
        raise RecordError(
            f"has no safety labels ({', '.join(SAFETY_LABEL_FIELDS)} are null)",
            origin=record.origin,
        )
    other = 1 - safer
    if not record.is_safe(safer) and record.is_safe(other):
        raise RecordError(
            f"inconsistent safety labels: safer_response_id is {safer} but "
            f"is_response_{safer}_safe is false while is_response_{other}_safe is true",
            origin=record.origin,
        )


def require_safety_labels(records: Sequence[PreferenceRecord]) -> None:
    """Raise (even when skipping bad records: the whole source is unusable) at the first pair
    without safety labels, naming its source: the cost model's data must carry them."""
    for record in records:
        if not record.has_safety_labels:
            source = record.origin.source if record.origin is not None else "a preference source"
            raise RecordError(
                f"{source} has no safety labels (safer_response_id, is_response_0_safe and "
                "is_response_1_safe are null, e.g. Anthropic HH-RLHF: helpfulness/harmlessness "
                "preferences only). The cost model needs them for its sign term (C > 0 for a "
                "response labelled unsafe), a dpo stage with stage.axis=safer for its pairs; "
                "such a dataset can train the reward model only (dpo: stage.axis=better). "
                "Train the cost model on PKU-SafeRLHF (data=pku_saferlhf) or on your own pairs "
                "with safety labels."
            )
