"""``safe-rlhf-train``: run one stage. Hydra's ``--help``, ``--cfg job`` and ``-m`` all work, and
``--describe`` prints every option of the chosen stage (and the other groups) with its composed
value and its documentation.

Heavy libraries (torch, Lightning, transformers) are imported inside ``main`` so that ``--help``
and ``--cfg job`` answer at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from .env import apply_offline_defaults

apply_offline_defaults()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from .schema import register_configs  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")

register_configs()
DESCRIBE = "--describe"


def main() -> Any:
    if DESCRIBE in sys.argv[1:]:
        overrides = [arg for arg in sys.argv[1:] if arg != DESCRIBE]
        sys.stdout.write(describe_options(overrides) + "\n")
        return None
    return run()


def describe_options(overrides: list[str]) -> str:
    """The documentation of every option of the composed config's stage, model, data and
    trainer, with the values these overrides give them (interpolations shown unresolved)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ..config import DataConfig, ModelConfig, TrainerConfig
    from ..config.describe import describe
    from .schema import STAGE_SCHEMAS

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    values = OmegaConf.to_container(cfg, resolve=False)
    groups = [
        (STAGE_SCHEMAS[values["stage"]["name"]], "stage"),
        (ModelConfig, "model"),
        (DataConfig, "data"),
        (TrainerConfig, "trainer"),
    ]
    return "\n\n".join(describe(schema, values[key], key) for schema, key in groups)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def run(cfg: DictConfig) -> dict:
    from ..config import ConfigError
    from ..data import RecordError
    from ..files import DiskFullError
    from ..rounds import LabelsPending
    from ..stages import NonFiniteError
    from .runner import discard_refused_run_folder, run_stage

    # Warnings become log records: in train.log with everything else, and filtered off the
    # console like the other known third-party noise (conf/hydra/job_logging/stage.yaml).
    logging.captureWarnings(True)
    try:
        return run_stage(cfg)
    except (ConfigError, RecordError) as error:
        # A bad configuration or data file is the user's to fix: one clear line on stderr (and
        # in train.log), no traceback, and no folder left that looks like a started run.
        logging.getLogger(__name__).error("%s", error)
        discard_refused_run_folder(Path(HydraConfig.get().runtime.output_dir))
        if (run_dir := _run_dir(cfg)) is not None:
            discard_refused_run_folder(run_dir)
        raise SystemExit(2) from None
    except DiskFullError as error:
        # One line naming the file and the space; the run folder (and its last good
        # checkpoint) stays, for a resume once there is room.
        logging.getLogger(__name__).error("%s", error)
        raise SystemExit(2) from None
    except NonFiniteError as error:
        logging.getLogger(__name__).error("%s", error)
        raise SystemExit(3) from None
    except LabelsPending as message:
        # Not a failure, but nothing for a following stage yet: stop a make chain here.
        logging.getLogger(__name__).warning("%s", message)
        raise SystemExit(4) from None
    finally:  # an in-process caller (a test, a notebook) gets its own warning display back
        logging.captureWarnings(False)


def _run_dir(cfg: DictConfig) -> Path | None:
    try:
        return Path(cfg.run_dir)
    except Exception:  # an unresolvable interpolation: nothing was made there
        return None


if __name__ == "__main__":
    main()
