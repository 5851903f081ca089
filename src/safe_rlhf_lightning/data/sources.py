"""Where records come from: dataset specs, the registry of named datasets, and reading rows.

A dataset spec is upstream safe-rlhf's ``name[:proportion[:path]]``:

- ``name`` is a registered dataset (``PKU-SafeRLHF/train``, ``alpaca``, ``benchmark-sft/train``
  ...) or a local path (a ``.jsonl``/``.json``/``.parquet`` file or a folder);
- ``proportion`` (> 0, default 1) scales the source: a source of n records gives round(p * n);
- ``path`` replaces a registered dataset's location with a local copy (file or folder).

JSONL is read line by line here, so that an error names the exact line (1-based). Everything
else goes through ``datasets`` and errors name the row index (0-based).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from safe_rlhf_lightning.data.records import (
    Origin,
    RecordError,
    RecordKind,
    require_text,
)

RowAdapter = Callable[[Mapping[str, Any], Origin], dict[str, Any]]
LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")

# Which record kinds a source holding rows of one kind can be read as.
READABLE_AS: dict[RecordKind, tuple[RecordKind, ...]] = {
    "preference": ("preference", "prompt"),
    "supervised": ("supervised", "prompt"),
    "prompt": ("prompt",),
}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    proportion: float = 1.0
    path: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("dataset spec has an empty name")
        if not (math.isfinite(self.proportion) and self.proportion > 0):
            raise ValueError(
                f"dataset {self.name!r}: proportion must be a finite number > 0, "
                f"got {self.proportion}"
            )


def parse_spec(text: str) -> DatasetSpec:
    """Parse ``name[:proportion[:path]]``; an empty proportion means 1 (``name::path``)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ValueError(
            f"invalid dataset spec {text!r}: expected name[:proportion[:path]], "
            "e.g. 'PKU-SafeRLHF/train:0.5' or 'alpaca:1:/data/alpaca'"
        )
    name = parts[0]
    proportion = 1.0
    if len(parts) > 1 and parts[1].strip():
        try:
            proportion = float(parts[1])
        except ValueError:
            raise ValueError(
                f"invalid dataset spec {text!r}: proportion {parts[1]!r} is not a number"
            ) from None
    path = None
    if len(parts) == 3:
        if not parts[2].strip():
            raise ValueError(
                f"invalid dataset spec {text!r}: the path after the second ':' is empty"
            )
        path = str(Path(parts[2]).expanduser())
    try:
        return DatasetSpec(name, proportion, path)
    except ValueError as error:
        raise ValueError(f"invalid dataset spec {text!r}: {error}") from None


def alpaca_to_supervised(row: Mapping[str, Any], origin: Origin) -> dict[str, Any]:
    """Alpaca's instruction/input/output as prompt/response. As upstream, a non-empty ``input``
    is joined to the instruction with a space; the other fields are kept (they go to extra)."""
    instruction = require_text(row, "instruction", origin)
    extra_input = row.get("input") or ""
    if not isinstance(extra_input, str):
        raise RecordError(
            f"must be a string, got {type(extra_input).__name__}", origin=origin, field="input"
        )
    output = require_text(row, "output", origin)
    prompt = f"{instruction} {extra_input}" if extra_input.strip() else instruction
    rest = {k: v for k, v in row.items() if k not in ("instruction", "input", "output")}
    return {"prompt": prompt, "response": output, **rest}


@dataclass(frozen=True)
class RegisteredDataset:
    """A named dataset: a hub dataset (``hub_id`` and ``split``) or a file under ``data_root``.

    Args:
        kind: what its rows hold; a preference or supervised set can also be read as prompts.
        adapter: maps a raw row onto the schema's field names (e.g. Alpaca's).
    """

    name: str
    kind: RecordKind
    hub_id: str | None = None
    split: str = "train"
    filename: str | None = None
    adapter: RowAdapter | None = None


REGISTRY: dict[str, RegisteredDataset] = {}


def register_dataset(dataset: RegisteredDataset) -> None:
    if (dataset.hub_id is None) == (dataset.filename is None):
        raise ValueError(f"dataset {dataset.name!r} needs exactly one of hub_id and filename")
    REGISTRY[dataset.name] = dataset


def _register_builtin_datasets() -> None:
    for split in ("train", "test"):
        for name, hub_id in (
            ("PKU-SafeRLHF", "PKU-Alignment/PKU-SafeRLHF"),
            ("PKU-SafeRLHF-30K", "PKU-Alignment/PKU-SafeRLHF-30K"),
        ):
            register_dataset(RegisteredDataset(f"{name}/{split}", "preference", hub_id, split))
        # The embedded benchmark's files, under the data_root folder.
        for name, kind, stem in (
            ("benchmark-sft", "supervised", "sft"),
            ("benchmark-preference", "preference", "preference"),
            ("benchmark-prompts", "prompt", "prompts"),
        ):
            filename = f"{stem}_{split}.jsonl"
            register_dataset(RegisteredDataset(f"{name}/{split}", kind, filename=filename))
    register_dataset(
        RegisteredDataset("alpaca", "supervised", "tatsu-lab/alpaca", adapter=alpaca_to_supervised)
    )


_register_builtin_datasets()


# ---------------------------------------------------------------------------------------------
# Reading rows. Each reader yields (origin, row) where row is a mapping, or a RecordError for a
# line that could not even be decoded (so skip mode can count it like any other bad record).
# ---------------------------------------------------------------------------------------------

RowStream = Iterator[tuple[Origin, Any]]


def iter_jsonl(path: Path) -> RowStream:
    """Rows of a JSON Lines file, one object per line; blank lines are ignored."""
    source = str(path)
    seen_any = False
    with path.open("rb") as file:
        for line_number, raw in enumerate(file, start=1):
            if line_number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            if not raw.strip():
                continue
            seen_any = True
            origin = Origin(source, f"line {line_number}")
            yield origin, _decode_json_line(raw, origin)
    if not seen_any:
        raise RecordError("the file is empty (no JSON lines)", origin=source)


def _decode_json_line(raw: bytes, origin: Origin) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return RecordError(
            f"is not valid UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})",
            origin=origin,
        )
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        hint = "" if raw.endswith(b"\n") else " (the last line is incomplete: truncated file?)"
        return RecordError(f"invalid JSON ({error.msg}, column {error.colno}){hint}", origin=origin)
    if not isinstance(row, dict):
        return RecordError(f"must be a JSON object, got a JSON {type(row).__name__}", origin=origin)
    return row


def iter_table(table: datasets.Dataset, source: str, batch_size: int = 1024) -> RowStream:
    # Batched access is much faster than one Arrow-to-Python conversion per row.
    index = 0
    for batch in table.iter(batch_size=batch_size):
        columns = list(batch)
        size = len(batch[columns[0]]) if columns else 0
        for i in range(size):
            yield Origin(source, f"row {index}"), {name: batch[name][i] for name in columns}
            index += 1


def _is_saved_to_disk(folder: Path) -> bool:
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _load_local(path: Path, split: str) -> RowStream:
    """Rows of a local file or folder (see the module docstring for the formats)."""
    if path.is_dir():
        if _is_saved_to_disk(path):
            table = datasets.load_from_disk(str(path))
            if isinstance(table, datasets.DatasetDict):
                if split not in table:
                    raise ValueError(f"{path}: no split {split!r}; it has {sorted(table)}")
                table = table[split]
        else:
            table = datasets.load_dataset(str(path), split=split)
        return iter_table(table, str(path))
    if not path.is_file():
        raise FileNotFoundError(f"dataset file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return iter_jsonl(path)
    if suffix in (".json", ".parquet"):
        builder = suffix.removeprefix(".")
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
        return iter_table(table, str(path))
    raise ValueError(f"{path}: unsupported file type; expected one of {LOCAL_SUFFIXES} or a folder")


def _looks_like_path(name: str) -> bool:
    return name.lower().endswith(LOCAL_SUFFIXES) or Path(name).expanduser().is_dir()


@dataclass(frozen=True)
class ResolvedSource:
    """Where one spec's rows live: a local file/folder (``path``) or a hub dataset."""

    label: str
    kind: RecordKind | None  # None for an unregistered local source: known once rows are read
    adapter: RowAdapter | None
    path: Path | None = None
    hub_id: str | None = None
    split: str = "train"

    def rows(self) -> RowStream:
        if self.path is not None:
            return _load_local(self.path, self.split)
        return iter_table(datasets.load_dataset(self.hub_id, split=self.split), self.label)


def resolve(spec: DatasetSpec, data_root: str | Path | None) -> ResolvedSource:
    registered = REGISTRY.get(spec.name)
    if registered is None:
        if spec.path is not None or not _looks_like_path(spec.name):
            raise ValueError(
                f"unknown dataset {spec.name!r}: neither a registered name nor a local file "
                f"({'/'.join(LOCAL_SUFFIXES)}) or folder. "
                f"Registered names: {', '.join(sorted(REGISTRY))}"
            )
        path = Path(spec.name).expanduser()
        return ResolvedSource(str(path), None, _detect_adapter, path=path)
    kind, adapter, split = registered.kind, registered.adapter, registered.split
    if spec.path is not None:  # a local copy of a registered dataset
        return ResolvedSource(spec.path, kind, adapter, path=Path(spec.path), split=split)
    if registered.filename is not None:
        if data_root is None:
            raise ValueError(
                f"dataset {spec.name!r} is the file {registered.filename} under data_root, "
                "but no data_root was given"
            )
        path = Path(data_root).expanduser() / registered.filename
        return ResolvedSource(str(path), kind, adapter, path=path)
    label = f"{registered.hub_id}[{split}]"
    return ResolvedSource(label, kind, adapter, hub_id=registered.hub_id, split=split)


def _detect_adapter(row: Mapping[str, Any], origin: Origin) -> dict[str, Any]:
    """Local files may be in Alpaca's layout (instruction/input/output, no prompt)."""
    if "prompt" not in row and "instruction" in row and "output" in row:
        return alpaca_to_supervised(row, origin)
    return dict(row)
