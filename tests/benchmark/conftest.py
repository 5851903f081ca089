"""Shared fixtures: one generated benchmark (seed 0) per test session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safe_rlhf_lightning.benchmark import Oracle, generate_benchmark


@pytest.fixture(scope="session")
def benchmark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("benchmark_seed0")
    generate_benchmark(output, seed=0)
    return output


@pytest.fixture(scope="session")
def manifest(benchmark_dir: Path) -> dict[str, Any]:
    return json.loads((benchmark_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def oracle() -> Oracle:
    return Oracle()


@pytest.fixture(scope="session")
def rows(benchmark_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every JSONL file of the generated benchmark, by file name."""
    result = {}
    for path in sorted(benchmark_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            result[path.name] = [json.loads(line) for line in handle]
    return result
