"""Where records come from: dataset specs, the registry of named datasets, and reading rows.

A dataset spec is upstream safe-rlhf's ``name[:proportion[:path]]``:

- ``name`` is a registered dataset (``PKU-SafeRLHF/train``, ``PKU-SafeRLHF/alpaca-7b/test``,
  ``alpaca``, ``hh-rlhf/harmless-base/train``, ``benchmark-sft/train`` ...), optionally pinned to
  a hub revision with ``@`` (``PKU-SafeRLHF/train@v0``), or a local path (a
  ``.jsonl``/``.json``/``.parquet`` file or a folder);
- ``proportion`` (> 0, default 1) scales the source: a source of n records gives round(p * n);
- ``path`` replaces a registered dataset's location with a local copy (file or folder).

A hub dataset and a local copy of its repository (e.g. ``hf download --repo-type dataset
PKU-Alignment/PKU-SafeRLHF --local-dir pku``) take the same call,
``datasets.load_dataset(<hub id or folder>, name=<config>, data_dir=..., revision=..., split=...)``,
so the registered subset (config or data folder) is picked from the copy as from the hub. A
``save_to_disk`` folder or a single file is read as it is (it already is the subset).

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
    SAFETY_LABEL_FIELDS,
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
    """One parsed spec; ``revision`` pins a registered hub dataset (``name@revision``)."""

    name: str
    proportion: float = 1.0
    path: str | None = None
    revision: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("dataset spec has an empty name")
        if not (math.isfinite(self.proportion) and self.proportion > 0):
            raise ValueError(
                f"dataset {self.name!r}: proportion must be a finite number > 0, "
                f"got {self.proportion}"
            )
        if self.revision is not None and self.path is not None:
            raise ValueError(
                f"dataset {self.name!r}: a revision (@{self.revision}) picks a version on the "
                "hub and cannot go with a local path; download that revision to the path instead"
            )


def parse_spec(text: str) -> DatasetSpec:
    """Parse ``name[@revision][:proportion[:path]]``; an empty proportion means 1 (``name::path``).

    ``@revision`` is read only after a registered name, so a local path may contain ``@``.
    """
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise ValueError(
            f"invalid dataset spec {text!r}: expected name[:proportion[:path]], "
            "e.g. 'PKU-SafeRLHF/train:0.5' or 'alpaca:1:/data/alpaca'"
        )
    name, revision = _split_revision(parts[0], text)
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
        return DatasetSpec(name, proportion, path, revision)
    except ValueError as error:
        raise ValueError(f"invalid dataset spec {text!r}: {error}") from None


def _split_revision(name: str, text: str) -> tuple[str, str | None]:
    base, at, revision = name.rpartition("@")
    if not at or base not in REGISTRY:
        return name, None
    if REGISTRY[base].hub_id is None:
        raise ValueError(
            f"invalid dataset spec {text!r}: {base!r} is a local file, it has no revisions"
        )
    if not revision.strip():
        raise ValueError(f"invalid dataset spec {text!r}: the revision after '@' is empty")
    return base, revision


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


HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"


def hh_rlhf_to_preference(row: Mapping[str, Any], origin: Origin) -> dict[str, Any]:
    """Anthropic HH-RLHF's ``chosen``/``rejected`` transcripts as a preference pair.

    Both fields are whole dialogues (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) that differ
    only in the last Assistant turn. The prompt is their shared dialogue up to that turn, without
    the first turn's ``Human:`` label (a one-turn prompt is then the bare question, as in
    PKU-SafeRLHF; earlier turns of a longer dialogue keep their labels). ``chosen`` becomes
    ``response_0`` and is the better one. HH-RLHF has no safety labels: they are null, so these
    pairs train a reward model but not a cost model.
    """
    chosen = require_text(row, "chosen", origin)
    rejected = require_text(row, "rejected", origin)
    cut = chosen.rfind(HH_ASSISTANT)
    if cut < 0 or rejected.rfind(HH_ASSISTANT) != cut or rejected[:cut] != chosen[:cut]:
        raise RecordError(
            f"chosen and rejected must be one dialogue up to a last {HH_ASSISTANT!r} turn and "
            "differ in that turn only",
            origin=origin,
        )
    prompt = chosen[:cut].strip().removeprefix(HH_HUMAN.strip()).strip()
    if not prompt:
        raise RecordError(
            "has no turn before its last Assistant turn", origin=origin, field="chosen"
        )
    responses = {}
    for field, transcript in (("chosen", chosen), ("rejected", rejected)):
        responses[field] = transcript[cut + len(HH_ASSISTANT) :].strip()
        if not responses[field]:
            raise RecordError("has an empty last Assistant turn", origin=origin, field=field)
        if HH_HUMAN in responses[field]:
            raise RecordError("ends with a Human turn", origin=origin, field=field)
    rest = {k: v for k, v in row.items() if k not in ("chosen", "rejected")}
    return {
        "prompt": prompt,
        "response_0": responses["chosen"],
        "response_1": responses["rejected"],
        "better_response_id": 0,
        **dict.fromkeys(SAFETY_LABEL_FIELDS),
        **rest,
    }


@dataclass(frozen=True)
class RegisteredDataset:
    """A named dataset: a hub dataset (``hub_id`` and ``split``) or a file under ``data_root``.

    Args:
        kind: what its rows hold; a preference or supervised set can also be read as prompts.
        adapter: maps a raw row onto the schema's field names (e.g. Alpaca's).
        config: the hub dataset's configuration (``load_dataset(name=...)``), e.g. a subset.
        data_dir: a folder of the hub repository to read (``load_dataset(data_dir=...)``).
        revision: a branch, tag or commit of the hub repository; a spec's ``@revision`` wins.
        safety_labels: whether its preference pairs carry PKU-SafeRLHF's safety labels
            (``safer_response_id``, ``is_response_*_safe``), which the cost model needs.
    """

    name: str
    kind: RecordKind
    hub_id: str | None = None
    split: str = "train"
    filename: str | None = None
    adapter: RowAdapter | None = None
    config: str | None = None
    data_dir: str | None = None
    revision: str | None = None
    safety_labels: bool = True


REGISTRY: dict[str, RegisteredDataset] = {}


def register_dataset(dataset: RegisteredDataset) -> None:
    if (dataset.hub_id is None) == (dataset.filename is None):
        raise ValueError(f"dataset {dataset.name!r} needs exactly one of hub_id and filename")
    REGISTRY[dataset.name] = dataset


PKU_SAFERLHF = "PKU-Alignment/PKU-SafeRLHF"
PKU_SAFERLHF_SUBSETS = ("alpaca-7b", "alpaca2-7b", "alpaca3-8b")
"""Configurations of PKU-SafeRLHF on the hub besides ``default`` (all three): the pairs whose
responses came from Alpaca-7B, Alpaca2-7B or Alpaca3-8B (dataset card, June 2024 release)."""
HH_RLHF = "Anthropic/hh-rlhf"
HH_RLHF_SUBSETS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
"""Folders of Anthropic/hh-rlhf with preference pairs (``red-team-attempts`` has another schema
and is not a preference set)."""


def _register_builtin_datasets() -> None:
    def hub(name: str, kind: RecordKind, hub_id: str, split: str = "train", **options: Any) -> None:
        register_dataset(RegisteredDataset(name, kind, hub_id, split, **options))

    for split in ("train", "test"):
        # PKU-SafeRLHF as on the hub today (the 2024 release, 83.4K pairs, all three subsets),
        # each subset, and the paper's data: the repository's revision v0 (PKU-SafeRLHF-v0).
        hub(f"PKU-SafeRLHF/{split}", "preference", PKU_SAFERLHF, split)
        for subset in PKU_SAFERLHF_SUBSETS:
            hub(f"PKU-SafeRLHF/{subset}/{split}", "preference", PKU_SAFERLHF, split, config=subset)
        hub(f"PKU-SafeRLHF-v0/{split}", "preference", PKU_SAFERLHF, split, revision="v0")
        hub(f"PKU-SafeRLHF-30K/{split}", "preference", "PKU-Alignment/PKU-SafeRLHF-30K", split)
        # Anthropic HH-RLHF: helpfulness/harmlessness preferences, no safety labels.
        hh = {"adapter": hh_rlhf_to_preference, "safety_labels": False}
        hub(f"hh-rlhf/{split}", "preference", HH_RLHF, split, **hh)
        for subset in HH_RLHF_SUBSETS:
            hub(f"hh-rlhf/{subset}/{split}", "preference", HH_RLHF, split, data_dir=subset, **hh)
        # The embedded benchmark's files, under the data_root folder.
        for name, kind, stem in (
            ("benchmark-sft", "supervised", "sft"),
            ("benchmark-preference", "preference", "preference"),
            ("benchmark-prompts", "prompt", "prompts"),
        ):
            filename = f"{stem}_{split}.jsonl"
            register_dataset(RegisteredDataset(f"{name}/{split}", kind, filename=filename))
    hub("PKU-SafeRLHF-10K/train", "preference", "PKU-Alignment/PKU-SafeRLHF-10K")
    hub("alpaca", "supervised", "tatsu-lab/alpaca", adapter=alpaca_to_supervised)


_register_builtin_datasets()


def datasets_without_safety_labels(specs: list[str]) -> list[str]:
    """The registered names among ``specs`` whose pairs carry no safety labels (HH-RLHF), known
    without reading them; a local file is only known once read (the cost model's dataset then
    fails on its first unlabelled pair)."""
    names = [parse_spec(spec).name for spec in specs]
    return [name for name in names if name in REGISTRY and not REGISTRY[name].safety_labels]


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
            yield origin, decode_json_line(raw, origin)
    if not seen_any:
        raise RecordError("the file is empty (no JSON lines)", origin=source)


def decode_json_line(raw: bytes, origin: Origin) -> Any:
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


@dataclass(frozen=True)
class HubSubset:
    """What ``datasets.load_dataset`` picks from a hub repository or a local copy of one."""

    split: str = "train"
    config: str | None = None
    data_dir: str | None = None
    revision: str | None = None

    def describe(self, location: str) -> str:
        """``location`` and what is picked of it, e.g. ``PKU-Alignment/PKU-SafeRLHF@v0[train]``."""
        subset = "".join(f"/{part}" for part in (self.config, self.data_dir) if part)
        revision = f"@{self.revision}" if self.revision else ""
        return f"{location}{subset}{revision}[{self.split}]"

    def load(self, location: str) -> datasets.Dataset:
        """One split of a hub dataset or of a local copy of its repository: the same call."""
        options = {"name": self.config, "data_dir": self.data_dir, "revision": self.revision}
        given = {key: value for key, value in options.items() if value is not None}
        return datasets.load_dataset(location, split=self.split, **given)


def _load_local(path: Path, subset: HubSubset, label: str) -> RowStream:
    """Rows of a local file or folder (see the module docstring for the formats); rows of a
    folder name ``label`` as their source."""
    if path.is_dir():
        if _is_saved_to_disk(path):
            table = datasets.load_from_disk(str(path))
            if isinstance(table, datasets.DatasetDict):
                if subset.split not in table:
                    raise ValueError(f"{path}: no split {subset.split!r}; it has {sorted(table)}")
                table = table[subset.split]
        else:  # a data folder, or a copy of a hub repository: read as the hub would be
            table = subset.load(str(path))
        return iter_table(table, label)
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
    subset: HubSubset = HubSubset()
    safety_labels: bool = True
    spec: DatasetSpec | None = None  # the spec of a hub dataset, named by its errors

    def rows(self) -> RowStream:
        if self.path is not None:
            return _load_local(self.path, self.subset, self.label)
        return iter_table(_load_hub(self), self.label)


def _load_hub(source: ResolvedSource) -> datasets.Dataset:
    """The hub dataset of ``source``; one that cannot be had (not cached while offline, or the
    hub unreachable) is a :class:`RecordError` naming the spec and the ways out."""
    try:
        return source.subset.load(source.hub_id)
    except ConnectionError as error:  # what `datasets` raises offline, and without a network
        name = source.spec.name if source.spec is not None else source.label
        message = hub_unavailable_message(source, error)
        raise RecordError(message, origin=f"dataset {name!r}") from None


def hub_unavailable_message(source: ResolvedSource, error: Exception) -> str:
    """Why a hub dataset could not be loaded, and how to get it: download it once with hub
    access on (the CLI turns it off by default), or point the spec at a local copy."""
    if datasets.config.HF_HUB_OFFLINE:
        reason = (
            f"{source.label} is not in the local datasets cache and hub access is off "
            "(HF_DATASETS_OFFLINE=1); download it once by running the same command with "
            "HF_DATASETS_OFFLINE=0 (needs internet)"
        )
    else:
        reason = f"cannot reach {source.label} on the hub ({error}); check the network"
    spec = source.spec or DatasetSpec(source.label)
    revision = f" --revision {source.subset.revision}" if source.subset.revision else ""
    return (
        f"{reason}, or use a local copy of the repository, e.g. `hf download --repo-type "
        f"dataset {source.hub_id}{revision} --local-dir /path/to/copy` and the spec "
        f"'{spec.name}:{spec.proportion:g}:/path/to/copy'"
    )


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
    kind, adapter = registered.kind, registered.adapter
    subset = HubSubset(
        registered.split,
        registered.config,
        registered.data_dir,
        spec.revision or registered.revision,
    )
    labels = registered.safety_labels
    if spec.path is not None:  # a local copy of a registered dataset
        path = Path(spec.path)
        hub_like = path.is_dir() and not _is_saved_to_disk(path)
        label = subset.describe(spec.path) if hub_like else spec.path
        return ResolvedSource(label, kind, adapter, path=path, subset=subset, safety_labels=labels)
    if registered.filename is not None:
        if data_root is None:
            raise ValueError(
                f"dataset {spec.name!r} is the file {registered.filename} under data_root, "
                "but no data_root was given"
            )
        path = Path(data_root).expanduser() / registered.filename
        return ResolvedSource(str(path), kind, adapter, path=path)
    label = subset.describe(registered.hub_id)
    return ResolvedSource(
        label,
        kind,
        adapter,
        hub_id=registered.hub_id,
        subset=subset,
        safety_labels=labels,
        spec=spec,
    )


def _detect_adapter(row: Mapping[str, Any], origin: Origin) -> dict[str, Any]:
    """Local files may be in Alpaca's layout (instruction/input/output, no prompt) or in
    HH-RLHF's (chosen/rejected transcripts, no prompt)."""
    if "prompt" not in row and "instruction" in row and "output" in row:
        return alpaca_to_supervised(row, origin)
    if "prompt" not in row and "chosen" in row and "rejected" in row:
        return hh_rlhf_to_preference(row, origin)
    return dict(row)
