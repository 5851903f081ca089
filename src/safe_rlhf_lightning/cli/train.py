"""``safe-rlhf-train``: run one stage. Hydra's ``--help``, ``--cfg job`` and ``-m`` all work.

Heavy libraries (torch, Lightning, transformers) are imported inside ``main`` so that ``--help``
and ``--cfg job`` answer at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .env import apply_offline_defaults

apply_offline_defaults()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from .schema import register_configs  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[3] / "conf")

register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def main(cfg: DictConfig) -> dict:
    from ..config import ConfigError
    from ..data import RecordError
    from ..files import DiskFullError
    from ..rounds import LabelsPending
    from ..stages import NonFiniteError
    from .runner import run_stage

    try:
        return run_stage(cfg)
    except (ConfigError, RecordError) as error:
        # A bad configuration or data file is the user's to fix: one clear line, no traceback.
        logging.getLogger(__name__).error("%s", error)
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


if __name__ == "__main__":
    main()
