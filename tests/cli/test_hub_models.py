"""Models named by hub id go through the Hugging Face cache: a tiny model stored in a local
cache, in the hub's layout, is loaded by its hub name exactly as a downloaded one would be."""

from __future__ import annotations

import shutil

import pytest

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError
from tests.conftest import compose_run_config

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_model(cache, repo_id: str, folder) -> None:
    """``folder`` stored as hub repository ``repo_id`` at revision main (offline-resolvable)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, model_folders):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    for name in ("sft", "reward", "cost"):
        _cache_model(cache, f"tiny-org/tiny-{name}", model_folders / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_ppo_stage_takes_actor_reward_and_cost_models_by_hub_name(
    hub_cache, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            "stage.max_steps=1",
            "stage.batch_size=2",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=4",
            "stage.minibatch_size=4",
            "stage.eval_limit=0",
            "stage.actor_init=tiny-org/tiny-sft",
            "stage.reward_model=tiny-org/tiny-reward",
            "stage.cost_model=tiny-org/tiny-cost",
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    assert results["train"]["steps"] == 1
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    written = (tmp_path / "run" / "config.yaml").read_text()
    assert "tiny-org/tiny-reward" in written  # the run records the name it was given


def test_a_hub_name_missing_from_the_offline_cache_names_the_key(
    hub_cache, tmp_path, benchmark_dir
):
    cfg = compose_run_config(
        ["stage=ppo_lag", "debug=fast", "stage.reward_model=tiny-org/not-there"],
        tmp_path,
        benchmark_dir,
    )
    with pytest.raises(ConfigError, match=r"stage\.reward_model.*tiny-org/not-there.*cache"):
        run_stage(cfg)
    assert not (tmp_path / "run" / "model").exists()
