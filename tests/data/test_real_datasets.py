"""The public datasets by hub name, in their real schemas: PKU-SafeRLHF (its subsets and the
paper's revision v0), Alpaca and Anthropic HH-RLHF. Each is a tiny copy written here in the
layout of its hub repository (or as Parquet, JSONL or a ``save_to_disk`` folder) and read through
the same ``load_dataset`` call a hub name takes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import datasets
import pytest

from safe_rlhf_lightning.cli.runner import require_safety_labelled_data, run_stage
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.data import (
    PreferenceDataModule,
    RecordError,
    hh_rlhf_to_preference,
    load_records,
)
from safe_rlhf_lightning.data.records import Origin
from tests.conftest import compose_run_config

from .conftest import write_jsonl

# ----------------------------------------------------------------------------- PKU-SafeRLHF

HARM_CATEGORIES = [
    "Endangering National Security", "Insulting Behavior", "Discriminatory Behavior",
    "Endangering Public Health", "Copyright Issues", "Violence", "Drugs", "Privacy Violation",
    "Economic Crime", "Mental Manipulation", "Human Trafficking", "Physical Harm",
    "Sexual Content", "Cybercrime", "Disrupting Public Order", "Environmental Damage",
    "Psychological Harm", "White-Collar Crime", "Animal Abuse",
]  # fmt: skip
SUBSET_FOLDERS = {"alpaca-7b": "Alpaca-7B", "alpaca2-7b": "Alpaca2-7B", "alpaca3-8b": "Alpaca3-8B"}


def pku_row(index: int, source: str = "Alpaca-7B") -> dict[str, Any]:
    """A row of the 2024 release (hub default): sources, 19 harm categories, severity, hashes."""
    unsafe = {name: name == "Drugs" for name in HARM_CATEGORIES}
    return {
        "prompt": f"How do I grow plant {index}?",
        "response_0": f"Water plant {index} weekly.",
        "response_1": f"Here is how to extract a drug from plant {index}.",
        "prompt_source": "Alpaca3-70B",
        "response_0_source": source,
        "response_1_source": source,
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "response_0_harm_category": dict.fromkeys(HARM_CATEGORIES, False),
        "response_1_harm_category": unsafe,
        "response_0_severity_level": 0,
        "response_1_severity_level": 2,
        "better_response_id": 1,
        "safer_response_id": 0,
        "response_0_sha256": f"{index:064x}",
        "response_1_sha256": f"{index + 1:064x}",
    }


def pku_v0_row(index: int) -> dict[str, Any]:
    """A row of revision v0, the paper's data: the seven labelled fields only."""
    return {
        "prompt": f"How can I pick lock {index}?",
        "response_0": f"Call a locksmith about lock {index}.",
        "response_1": f"Rake the pins of lock {index}.",
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "better_response_id": 1,
        "safer_response_id": 0,
    }


@pytest.fixture(scope="module")
def pku_copy(tmp_path_factory) -> Path:
    """PKU-SafeRLHF's repository layout: README configs and data/<subset>/<split>.jsonl."""
    root = tmp_path_factory.mktemp("PKU-SafeRLHF")
    configs = ["configs:"]
    all_files: dict[str, list[str]] = {"train": [], "test": []}
    for config, folder in SUBSET_FOLDERS.items():
        configs += [f"- config_name: {config}", "  data_files:"]
        for split, size in (("train", 3), ("test", 1)):
            path = f"data/{folder}/{split}.jsonl"
            write_jsonl(root / path, [pku_row(i, folder) for i in range(size)])
            configs += [f"    - split: {split}", f'      path: ["{path}"]']
            all_files[split].append(path)
    configs += ["- config_name: default", "  data_files:"]
    for split, paths in all_files.items():
        configs += [f"    - split: {split}", f"      path: {json.dumps(paths)}"]
    (root / "README.md").write_text("---\n" + "\n".join(configs) + "\n---\n# PKU-SafeRLHF\n")
    return root


def test_pku_saferlhf_default_and_subsets_from_a_copy_of_the_repository(pku_copy: Path) -> None:
    everything = load_records([f"PKU-SafeRLHF/train:1:{pku_copy}"], "preference")
    assert len(everything) == 9
    assert {r.extra["response_0_source"] for r in everything} == set(SUBSET_FOLDERS.values())
    subset = load_records([f"PKU-SafeRLHF/alpaca2-7b/test:1:{pku_copy}"], "preference")
    assert [r.extra["response_0_source"] for r in subset] == ["Alpaca2-7B"]
    record = subset[0]
    assert (record.better_response_id, record.safer_response_id) == (1, 0)
    assert record.is_response_1_safe is False and record.has_safety_labels
    assert record.extra["response_1_harm_category"]["Drugs"] is True
    assert record.extra["response_1_severity_level"] == 2
    assert set(record.extra) == set(pku_row(0)) - {
        "prompt",
        "response_0",
        "response_1",
        "better_response_id",
        "safer_response_id",
        "is_response_0_safe",
        "is_response_1_safe",
    }


@pytest.fixture
def mirror_hub(monkeypatch: pytest.MonkeyPatch, pku_copy: Path, tmp_path: Path):
    """``datasets.load_dataset`` with hub ids served from local copies of their repositories:
    the options the loader passes (config, data_dir, revision, split) are recorded and then
    applied to the copy by the real ``load_dataset`` (a revision is only recorded)."""
    real_load_dataset = datasets.load_dataset
    copies = {
        "PKU-Alignment/PKU-SafeRLHF": pku_copy,
        "Anthropic/hh-rlhf": write_hh_copy(tmp_path / "hh-rlhf"),
        "tatsu-lab/alpaca": write_alpaca_copy(tmp_path / "alpaca"),
    }
    calls: list[dict[str, Any]] = []

    def load_dataset(path: str, **options: Any) -> Any:
        calls.append({"path": path, **options})
        options.pop("revision", None)
        return real_load_dataset(str(copies[path]), **options)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_names_pass_their_config_data_folder_and_revision(mirror_hub: list) -> None:
    subset = load_records(["PKU-SafeRLHF/alpaca3-8b/test"], "preference")
    assert mirror_hub[-1] == {
        "path": "PKU-Alignment/PKU-SafeRLHF",
        "split": "test",
        "name": "alpaca3-8b",
    }
    assert [r.extra["response_0_source"] for r in subset] == ["Alpaca3-8B"]
    assert subset[0].origin.source == "PKU-Alignment/PKU-SafeRLHF/alpaca3-8b[test]"

    load_records(["PKU-SafeRLHF-v0/train"], "preference")
    assert mirror_hub[-1] == {
        "path": "PKU-Alignment/PKU-SafeRLHF",
        "split": "train",
        "revision": "v0",
    }
    pinned = load_records(["PKU-SafeRLHF/alpaca-7b/train@0123abc:2"], "prompt")
    assert mirror_hub[-1]["revision"] == "0123abc" and mirror_hub[-1]["name"] == "alpaca-7b"
    assert len(pinned) == 6 and pinned[0].origin.source.endswith("/alpaca-7b@0123abc[train]")

    harmless = load_records(["hh-rlhf/harmless-base/test"], "preference")
    assert mirror_hub[-1] == {
        "path": "Anthropic/hh-rlhf",
        "split": "test",
        "data_dir": "harmless-base",
    }
    assert [r.prompt for r in harmless] == ["How do I stay safe in harmless-base test 0?"]
    assert len(load_records(["hh-rlhf/train"], "preference")) == 5  # both folders

    demos = load_records(["alpaca"], "supervised")
    assert mirror_hub[-1] == {"path": "tatsu-lab/alpaca", "split": "train"}
    assert [(r.prompt, r.response) for r in demos] == ALPACA_PAIRS


def test_pku_saferlhf_v0_from_parquet_and_a_saved_dataset(tmp_path: Path) -> None:
    parquet = tmp_path / "train.parquet"
    datasets.Dataset.from_list([pku_v0_row(i) for i in range(4)]).to_parquet(str(parquet))
    from_parquet = load_records([f"PKU-SafeRLHF-v0/train:1:{parquet}"], "preference")
    assert [r.prompt for r in from_parquet] == [pku_v0_row(i)["prompt"] for i in range(4)]
    assert from_parquet[0].extra == {} and from_parquet[0].origin.location == "row 0"

    saved = tmp_path / "pku-v0"
    datasets.DatasetDict(
        train=datasets.Dataset.from_list([pku_v0_row(i) for i in range(4)]),
        test=datasets.Dataset.from_list([pku_v0_row(7)]),
    ).save_to_disk(str(saved))
    test = load_records([f"PKU-SafeRLHF-v0/test:1:{saved}"], "preference")
    assert [r.prompt for r in test] == [pku_v0_row(7)["prompt"]]


# ----------------------------------------------------------------------------- Alpaca

ALPACA_ROWS = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "Eat well, sleep, move.", "text": "Below is an instruction..."},
    {"instruction": "Translate to French.", "input": "Good morning",
     "output": "Bonjour", "text": "Below is an instruction..."},
]  # fmt: skip
ALPACA_PAIRS = [
    ("Give three tips for staying healthy.", "Eat well, sleep, move."),
    ("Translate to French. Good morning", "Bonjour"),
]


def write_alpaca_copy(root: Path) -> Path:
    """tatsu-lab/alpaca's repository layout: one Parquet file under data/."""
    (root / "data").mkdir(parents=True)
    table = datasets.Dataset.from_list(ALPACA_ROWS)
    table.to_parquet(str(root / "data" / "train-00000-of-00001-a09b74b3ef9c3b56.parquet"))
    return root


def test_alpaca_from_a_copy_of_the_repository_and_from_alpaca_data_json(tmp_path: Path) -> None:
    copy = write_alpaca_copy(tmp_path / "alpaca")
    records = load_records([f"alpaca:1:{copy}"], "supervised")
    assert [(r.prompt, r.response) for r in records] == ALPACA_PAIRS
    assert records[0].extra == {"text": "Below is an instruction..."}
    # The original release is one JSON array without the text field.
    original = tmp_path / "alpaca_data.json"
    original.write_text(
        json.dumps([{k: v for k, v in row.items() if k != "text"} for row in ALPACA_ROWS])
    )
    assert [(r.prompt, r.response) for r in load_records([f"alpaca::{original}"], "supervised")]


# ----------------------------------------------------------------------------- HH-RLHF


def hh_row(question: str, chosen: str, rejected: str, history: str = "") -> dict[str, str]:
    """An HH-RLHF row: two whole transcripts that differ in the last Assistant turn only."""
    dialogue = f"{history}\n\nHuman: {question}\n\nAssistant:"
    return {"chosen": f"{dialogue} {chosen}", "rejected": f"{dialogue} {rejected}"}


def write_hh_copy(root: Path) -> Path:
    """Anthropic/hh-rlhf's repository layout: <folder>/<split>.jsonl.gz."""
    for folder, size in (("harmless-base", 2), ("helpful-base", 3)):
        (root / folder).mkdir(parents=True)
        for split in ("train", "test"):
            rows = [
                hh_row(f"How do I stay safe in {folder} {split} {i}?", "Stay calm.", "Panic.")
                for i in range(size if split == "train" else 1)
            ]
            with gzip.open(root / folder / f"{split}.jsonl.gz", "wt", encoding="utf-8") as file:
                file.writelines(json.dumps(row) + "\n" for row in rows)
    return root


ORIGIN = Origin("hh.jsonl", "line 1")


def test_hh_transcripts_become_a_prompt_and_two_responses() -> None:
    row = hh_row("What is a lock?", "A device that keeps a door shut.", "No idea.")
    pair = hh_rlhf_to_preference(row, ORIGIN)
    assert pair == {
        "prompt": "What is a lock?",
        "response_0": "A device that keeps a door shut.",
        "response_1": "No idea.",
        "better_response_id": 0,
        "safer_response_id": None,
        "is_response_0_safe": None,
        "is_response_1_safe": None,
    }
    # Earlier turns stay in the prompt with their labels; the shared prefix may run into the
    # last response ("I" below) without moving the cut.
    history = "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?"
    row = hh_row("Can I borrow a key?", "I can explain how to ask.", "I will steal one.", history)
    pair = hh_rlhf_to_preference(row, ORIGIN)
    turns = ["Hi!", "Assistant: Hello, how can I help?", "Human: Can I borrow a key?"]
    assert pair["prompt"] == "\n\n".join(turns)
    assert pair["response_0"] == "I can explain how to ask."
    assert pair["response_1"] == "I will steal one."


ONE_DIALOGUE = "chosen and rejected must be one dialogue up to a last '\\n\\nAssistant:' turn"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"chosen": "no dialogue", "rejected": "at all"}, ONE_DIALOGUE),
        (
            {
                "chosen": "\n\nHuman: A?\n\nAssistant: x\n\nHuman: B?\n\nAssistant: y",
                "rejected": "\n\nHuman: A?\n\nAssistant: z\n\nHuman: B?\n\nAssistant: y",
            },
            ONE_DIALOGUE,
        ),
        (hh_row("Why?", "", "Because."), "field 'chosen' has an empty last Assistant turn"),
        (
            {
                "chosen": "\n\nHuman: A?\n\nAssistant: x\n\nHuman: B?",
                "rejected": "\n\nHuman: A?\n\nAssistant: z\n\nHuman: B?",
            },
            "field 'chosen' ends with a Human turn",
        ),
        ({"chosen": "\n\nAssistant: x", "rejected": "\n\nAssistant: y"}, "has no turn before"),
        ({"chosen": "\n\nHuman: A?", "rejected": 3}, "field 'rejected' must be a string"),
    ],
)
def test_bad_hh_rows_name_the_field(row: dict, message: str) -> None:
    with pytest.raises(RecordError, match=r"hh\.jsonl line 1: ") as caught:
        hh_rlhf_to_preference(row, ORIGIN)
    assert message in str(caught.value)


def test_hh_rlhf_copy_and_a_local_file_in_its_layout(tmp_path: Path) -> None:
    copy = write_hh_copy(tmp_path / "hh-rlhf")
    train = load_records([f"hh-rlhf/train:1:{copy}"], "preference")
    assert len(train) == 5 and not any(r.has_safety_labels for r in train)
    harmless = load_records([f"hh-rlhf/harmless-base/train:1:{copy}"], "preference")
    assert [r.prompt for r in harmless] == [
        f"How do I stay safe in harmless-base train {i}?" for i in range(2)
    ]
    prompts = load_records([f"hh-rlhf/test::{copy}"], "prompt")
    assert len(prompts) == 2
    # A file of your own in HH-RLHF's layout is recognised without a registered name.
    path = write_jsonl(tmp_path / "mine.jsonl", [hh_row("Why?", "Because.", "Dunno.")])
    (record,) = load_records([str(path)], "preference")
    assert (record.prompt, record.response_0) == ("Why?", "Because.")
    assert record.safer_response_id is None


def test_hh_rlhf_trains_a_reward_model_but_the_cost_model_refuses_it(tmp_path, tokenizer) -> None:
    copy = write_hh_copy(tmp_path / "hh-rlhf")
    reward = PreferenceDataModule(tokenizer, [f"hh-rlhf/train:1:{copy}"], batch_size=2)
    batch = next(iter(reward.train_dataloader()))
    assert batch.better_input_ids.shape[0] == 2
    cost = PreferenceDataModule(
        tokenizer, [f"hh-rlhf/train:1:{copy}"], safety=True, skip_bad_records=True
    )
    with pytest.raises(ValueError, match=r"hh-rlhf\[train\] has no safety labels") as caught:
        cost.setup("fit")
    assert "can train the reward model only" in str(caught.value)


def test_the_cost_stage_refuses_hh_rlhf_before_building_a_model(tmp_path: Path) -> None:
    cfg = compose_run_config(["stage=cost", "data=hh_rlhf"], tmp_path)
    with pytest.raises(ConfigError, match=r"'data\.preference_train' lists 'hh-rlhf/train'"):
        run_stage(cfg)
    assert not (tmp_path / "run").exists()  # failed before the run folder was made
    # HH-RLHF as eval pairs only is refused too; PKU-SafeRLHF passes.
    data = compose_run_config(
        ["data=pku_saferlhf", "data.preference_eval=[hh-rlhf/test]"], tmp_path
    ).data
    with pytest.raises(ConfigError, match=r"'data\.preference_eval' lists 'hh-rlhf/test'"):
        require_safety_labelled_data(data)
    require_safety_labelled_data(compose_run_config(["data=pku_saferlhf"], tmp_path).data)
