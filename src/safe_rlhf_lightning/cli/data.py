"""The data a stage reads: the embedded benchmark generated on first use, the DataModule
options every stage shares, and a check of every data source before any model is loaded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..benchmark import generate_benchmark
from ..config import ConfigError, DataConfig, RunConfig
from ..data import PromptTemplate

log = logging.getLogger(__name__)

BENCHMARK_PREFIX = "benchmark-"
MANIFEST = "manifest.json"


def require_datasets(specs: list[str], key: str) -> list[str]:
    if not specs:
        raise ConfigError(
            f"config key '{key}' is empty: this stage needs at least one dataset spec "
            "'name[:proportion[:path]]' (e.g. data=benchmark, or data=local with your files)"
        )
    return specs


# Stage keys that name a model folder; a Hugging Face hub id there is resolved to its local
# snapshot before the stage runs (resolve_hub_models).


def uses_benchmark(specs: list[str]) -> bool:
    return bool(specs) and all(spec.startswith(BENCHMARK_PREFIX) for spec in specs)


def ensure_benchmark(data: DataConfig) -> Path | None:
    """Generate the embedded benchmark into ``data.root`` when it is missing (and asked for).

    An existing benchmark made with another seed is an error rather than silently overwritten.
    """
    if not data.generate_benchmark:
        return None
    root = Path(data.root)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        seed = json.loads(manifest_path.read_text()).get("seed")
        if seed != data.benchmark_seed:
            raise ConfigError(
                f"{root} holds the benchmark generated with seed {seed}, but "
                f"data.benchmark_seed={data.benchmark_seed}: point data.root elsewhere or delete it"
            )
        return root
    log.info("generating the embedded benchmark (seed %d) into %s", data.benchmark_seed, root)
    generate_benchmark(root, seed=data.benchmark_seed)
    return root


def datamodule_options(typed: RunConfig, template: PromptTemplate) -> dict:
    """The DataModule arguments every stage takes from ``data`` and the stage's batch sizes."""
    data, stage = typed.data, typed.stage
    return {
        "data_root": data.root,
        "template": template,
        "max_length": data.max_length,
        "batch_size": stage.batch_size,
        "eval_batch_size": stage.eval_batch_size,
        "num_workers": data.num_workers,
        "skip_bad_records": data.skip_bad_records,
        "seed": typed.seed,
    }
