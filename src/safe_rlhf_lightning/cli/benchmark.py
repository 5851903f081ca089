"""``safe-rlhf-benchmark``: write the embedded benchmark's datasets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .env import apply_offline_defaults

apply_offline_defaults()

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from .schema import register_configs  # noqa: E402
from .train import CONF_DIR  # noqa: E402

log = logging.getLogger(__name__)
register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="benchmark")
def main(cfg: DictConfig) -> dict:
    from ..benchmark import generate_benchmark

    typed = OmegaConf.to_object(cfg)
    output_dir = Path(typed.output_dir)
    manifest = output_dir / "manifest.json"
    if manifest.exists() and not typed.force:
        log.info("%s exists; pass force=true to write the benchmark again", manifest)
        return json.loads(manifest.read_text())
    result = generate_benchmark(output_dir, seed=typed.seed)
    log.info("wrote the embedded benchmark to %s", output_dir)
    return result


if __name__ == "__main__":
    main()
