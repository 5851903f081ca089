"""Shared test set-up: offline by default, small local tokenizers, tmp run folders."""

from __future__ import annotations

import os

# Before transformers / datasets are imported anywhere: never reach for the hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch


def _threads_per_process() -> int:
    """Torch threads for this test process: two at most; under pytest-xdist the cores shared
    among the workers (one each on 2 cores), so that workers do not oversubscribe the machine."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, (cores or 1) // workers))


torch.set_num_threads(min(_threads_per_process(), torch.get_num_threads()))
if "PYTEST_XDIST_WORKER" in os.environ:  # inherited by the runs tests start as subprocesses
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads_per_process()))


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, slow tests first (stable order otherwise): the scheduler hands them
    out before the many quick ones, so the longest runs do not end up together at the tail."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


SMALL_CORPUS = [
    "How do I bake bread at home?",
    "First, mix flour, water and salt. Next, knead the dough for ten minutes.",
    "I am sorry, but I cannot help with that.",
    "BEGINNING OF CONVERSATION: USER: ASSISTANT:",
] * 20


@pytest.fixture(scope="session")
def small_tokenizer():
    from safe_rlhf_lightning.models import train_bpe_tokenizer

    return train_bpe_tokenizer(SMALL_CORPUS, vocab_size=400)


@pytest.fixture(scope="session")
def benchmark_dir(tmp_path_factory):
    """The embedded benchmark, generated once per test session (about a second)."""
    from safe_rlhf_lightning.benchmark import generate_benchmark

    root = tmp_path_factory.mktemp("benchmark")
    generate_benchmark(root, seed=0)
    return root


def quick_trainer(**overrides):
    """A CPU Trainer for smoke runs: two steps, no logger, checkpoints, bars or summaries."""
    import pytorch_lightning as pl

    settings = {
        "max_steps": 2,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**settings, **overrides})


TINY_TEST_MODEL = [
    "model.tiny.hidden_size=32",
    "model.tiny.num_layers=1",
    "model.tiny.num_heads=2",
    "model.tiny.intermediate_size=64",
    "model.tiny.vocab_size=1024",
]


def compose_run_config(overrides: list[str], tmp_path, benchmark_dir=None):
    """Compose ``conf/train.yaml`` like the CLI does, with every output under ``tmp_path``."""
    from hydra import compose, initialize_config_dir

    from safe_rlhf_lightning.cli.schema import register_configs
    from safe_rlhf_lightning.cli.train import CONF_DIR

    register_configs()
    data = [f"data.root={benchmark_dir}"] if benchmark_dir is not None else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            config_name="train",
            overrides=[
                f"run_dir={tmp_path / 'run'}",
                f"paths.runs_dir={tmp_path / 'runs'}",
                f"paths.data_dir={tmp_path / 'data'}",
                *data,
                *overrides,
            ],
        )


TEST_MODEL_SIZE = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}


@pytest.fixture(scope="session")
def model_folders(tmp_path_factory):
    """Untrained SFT, reward and cost folders of the tiny test size, sharing a tokenizer trained
    on the benchmark's text (what the PPO and evaluation stages read)."""
    from safe_rlhf_lightning.benchmark import benchmark_corpus
    from safe_rlhf_lightning.data import PromptTemplate
    from safe_rlhf_lightning.models import ScoreModel, build_tiny_causal_lm, train_bpe_tokenizer

    root = tmp_path_factory.mktemp("models")
    corpus = [*benchmark_corpus(), PromptTemplate().format_prompt("")]
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=600)
    actor = build_tiny_causal_lm(tokenizer, seed=0, **TEST_MODEL_SIZE)
    actor.save_pretrained(root / "sft")
    tokenizer.save_pretrained(root / "sft")
    for seed, name in ((1, "reward"), (2, "cost")):
        torch.manual_seed(seed)
        backbone = build_tiny_causal_lm(tokenizer, seed=seed, **TEST_MODEL_SIZE)
        ScoreModel(backbone, score_type=name).save_pretrained(root / name, tokenizer)
    return root
