"""The bad-input corpus: every bad data file and bad configuration gives one clear error that
names the place (file and line, or config key) and what was expected, and nothing is written.

Cases that the data and config unit tests check in more depth are repeated here on purpose, so
this file is the one list of what a user can get wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.data import RecordError, SafetyPreferenceDataset, load_records
from tests.conftest import TEST_MODEL_SIZE, compose_run_config

GOOD = {
    "prompt": "How do I bake bread?",
    "response_0": "Knead the dough.",
    "response_1": "Buy some.",
    "better_response_id": 0,
    "safer_response_id": 0,
    "is_response_0_safe": True,
    "is_response_1_safe": True,
}


def _line(**changes) -> str:
    row = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    return json.dumps(row)


# name -> (file bytes, expected message); the bad record is always line 2.
DATA_FILES = {
    "missing field": (_line(response_1=...), r"line 2: field 'response_1' is missing"),
    "wrong type": (
        _line(better_response_id="zero"),
        r"line 2: field 'better_response_id' must be 0 or 1, got 'zero'",
    ),
    "id out of range": (
        _line(safer_response_id=2),
        r"line 2: field 'safer_response_id' must be 0 or 1, got 2",
    ),
    "empty string": (_line(prompt=""), r"line 2: field 'prompt' must be a non-empty string"),
    "boolean as text": (
        _line(is_response_0_safe="yes"),
        r"line 2: field 'is_response_0_safe' must be",
    ),
    "not an object": ("[1, 2]", r"line 2: .*object"),
    "non-UTF-8 bytes": (b'{"prompt": "\xff\xfe"}', r"line 2: is not valid UTF-8 \(byte 0xff"),
    "truncated JSONL": (_line()[:25], r"line 2: invalid JSON .*truncated file\?"),
}


def _write(path: Path, second_line: str | bytes) -> Path:
    tail = second_line if isinstance(second_line, bytes) else second_line.encode()
    path.write_bytes(_line().encode() + b"\n" + tail)
    return path


@pytest.mark.parametrize("case", list(DATA_FILES))
def test_bad_data_file_names_file_line_and_expectation(case, tmp_path):
    content, message = DATA_FILES[case]
    path = _write(tmp_path / "pairs.jsonl", content)
    with pytest.raises(RecordError, match=message) as error:
        load_records([str(path)], "preference")
    assert str(path) in str(error.value)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(RecordError, match=r"empty.jsonl: the file is empty"):
        load_records([str(path)], "preference")


def test_inconsistent_safety_labels_name_the_record(tmp_path, small_tokenizer):
    bad = _line(safer_response_id=0, is_response_0_safe=False, is_response_1_safe=True)
    path = _write(tmp_path / "pairs.jsonl", bad)
    records = load_records([str(path)], "preference")
    with pytest.raises(RecordError, match=r"line 2: inconsistent safety labels"):
        SafetyPreferenceDataset(records, small_tokenizer, max_length=64)


# -- configurations (checked before any model is built) --------------------------------------

CONFIGS = {
    "negative learning rate": (["stage.lr=-1"], "stage.lr"),
    "checkpoint interval below 0": (["stage.checkpoint_every=-1"], "stage.checkpoint_every"),
    "max_length of 0": (["data.max_length=0"], "data.max_length"),
    "PPO minibatch of 0": (["stage=ppo_lag", "stage.minibatch_size=0"], "stage.minibatch_size"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config_value_names_the_key(case, tmp_path):
    overrides, key = CONFIGS[case]
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        validate_config(compose_run_config(overrides, tmp_path))


def test_unknown_key_is_refused_naming_it(tmp_path):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as error:
        compose_run_config(["stage.lrr=1"], tmp_path)
    assert "Key 'lrr' not in 'SFTStageConfig'" in str(error.value.__cause__)


def _ppo(model_folders: Path, tmp_path: Path, benchmark_dir: Path, *overrides: str):
    return compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            "stage.max_steps=1",
            "stage.batch_size=2",
            "stage.num_return_sequences=1",
            "stage.max_new_tokens=4",
            "stage.minibatch_size=2",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
            *overrides,
        ],
        tmp_path,
        benchmark_dir,
    )


@pytest.fixture(scope="module")
def other_tokenizer_folder(tmp_path_factory):
    """A causal LM whose tokenizer differs from the test models' one."""
    from safe_rlhf_lightning.models import build_tiny_causal_lm, train_bpe_tokenizer

    folder = tmp_path_factory.mktemp("other")
    tokenizer = train_bpe_tokenizer(["a completely different corpus of words"] * 20, 120)
    build_tiny_causal_lm(tokenizer, seed=0, **TEST_MODEL_SIZE).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


PPO_CASES = {
    "λ window of 0": (["lambda_schedule.window=0"], r"lambda_schedule.*window must be"),
    "λ max below its init": (
        ["lambda_schedule.init=2.0", "lambda_schedule.max=1.0"],
        r"lambda_schedule.*max must be None or >= init \(2.0\)",
    ),
    "reference with another tokenizer": (
        ["stage.reference_init={other}"],
        r"config key 'stage.reference_init': .* another tokenizer than the actor",
    ),
    "critic with another tokenizer": (
        ["stage.reward_critic_init={other}"],
        r"config key 'stage.reward_critic_init': .* another tokenizer than the actor",
    ),
}


@pytest.mark.parametrize("case", list(PPO_CASES))
def test_bad_ppo_setting_fails_before_training_and_writes_nothing(
    case, model_folders, other_tokenizer_folder, tmp_path, benchmark_dir
):
    overrides, message = PPO_CASES[case]
    overrides = [o.format(other=other_tokenizer_folder) for o in overrides]
    with pytest.raises(ConfigError, match=message):
        run_stage(_ppo(model_folders, tmp_path, benchmark_dir, *overrides))
    run_dir = tmp_path / "run"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "model").exists()


def test_prompt_longer_than_max_length_names_the_record(model_folders, tmp_path, benchmark_dir):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n" + json.dumps({"prompt": "word " * 300}))
    cfg = _ppo(
        model_folders,
        tmp_path,
        benchmark_dir,
        f"data.prompt_train=[{prompts}]",
        "data.max_length=64",
    )
    with pytest.raises(RecordError, match=r"prompts.jsonl line 2.*max_length=64"):
        run_stage(cfg)
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.slow
def test_cli_reports_a_bad_data_file_in_one_line(tmp_path, benchmark_dir):
    path = tmp_path / "sft.jsonl"
    path.write_text('{"prompt": "x", "response": "y"}\n{"prompt": "x", "response": ')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_rlhf_lightning.cli.train",
            "stage=sft",
            "debug=fast",
            f"data.sft_train=[{path}]",
            f"data.root={benchmark_dir}",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    output = result.stdout + result.stderr  # Hydra's log handler writes to stdout
    assert "Traceback" not in output
    assert f"{path} line 2: invalid JSON" in output
    assert not (tmp_path / "run" / "model").exists()


def _cli(*overrides: str, tmp_path: Path, env: dict[str, str] | None = None):
    """``safe-rlhf-train`` in a subprocess; its output is stdout and stderr together (Hydra's
    log handler may write to either)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safe_rlhf_lightning.cli.train",
            *overrides,
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow
def test_cli_reports_a_training_set_left_empty_in_one_line(model_folders, tmp_path):
    """All pairs skipped or identical once tokenized: exit 2 and one line, not torch's
    'num_samples should be a positive integer value' with a traceback."""
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        _line(better_response_id=2) + "\n" + _line(response_0="  Same.", response_1="Same.")
    )
    code, output = _cli(
        "stage=reward",
        "debug=fast",
        f"stage.init_from={model_folders / 'sft'}",
        f"data.preference_train=[{path}]",
        "data.preference_eval=[]",
        "data.skip_bad_records=true",
        tmp_path=tmp_path,
    )
    assert code == 2, output[-3000:]
    assert "Traceback" not in output and "num_samples" not in output
    assert (
        f"no usable records in {path}: 1 skipped as bad records, 1 dropped as identical after "
        "tokenization" in output
    )
    assert not (tmp_path / "run" / "model").exists()


def test_identical_responses_are_a_record_error(tmp_path):
    path = _write(tmp_path / "pairs.jsonl", _line(response_1=GOOD["response_0"]))
    with pytest.raises(RecordError, match=r"line 2: field 'response_1' is identical to response_0"):
        load_records([str(path)], "preference")


@pytest.mark.slow
def test_cli_reports_an_uncached_hub_dataset_in_one_line(model_folders, tmp_path):
    """Offline (the CLI's default) with an empty cache: which dataset, that it is not cached,
    and how to get it; no network is tried, so it fails at once."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("HF_DATASETS_CACHE", None)
    env.pop("HF_HUB_CACHE", None)
    started = time.monotonic()
    code, output = _cli(
        "stage=cost",
        "data=pku_saferlhf",
        "debug=fast",
        f"stage.init_from={model_folders / 'sft'}",
        tmp_path=tmp_path,
        env=env,
    )
    assert code == 2, output[-3000:]
    assert "Traceback" not in output and "ConnectionError" not in output
    assert (
        "dataset 'PKU-SafeRLHF/train': PKU-Alignment/PKU-SafeRLHF[train] is not in the local "
        "datasets cache" in output
    )
    assert "HF_DATASETS_OFFLINE=0" in output and "'PKU-SafeRLHF/train:1:/path/to/copy'" in output
    # A hub look-up online retries for minutes; the bound leaves room for a loaded machine.
    assert time.monotonic() - started < 300


def test_checkpoints_load_without_unpickling_code(model_folders, tmp_path, benchmark_dir):
    """Every checkpoint a stage writes loads with weights_only=True (safe loading)."""
    cfg = _ppo(model_folders, tmp_path, benchmark_dir, "stage.eval_limit=0", "stage.max_steps=1")
    run_stage(cfg)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["ppo_step"] == 1 and "lambda_schedules" in checkpoint
