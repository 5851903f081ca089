"""A quiet console: known third-party noise is kept off the console by the stage job logging
(conf/hydra/job_logging/stage.yaml) but still reaches the run's ``train.log``; Lightning's model
summaries only with ``verbose=true``."""

from __future__ import annotations

import logging
import sys
import warnings

import hydra
from omegaconf import DictConfig

from safe_rlhf_lightning.cli.env import QuietConsole
from safe_rlhf_lightning.cli.schema import register_configs
from safe_rlhf_lightning.cli.train import CONF_DIR
from tests.conftest import compose_run_config

TIP = "💡 Tip: For seamless cloud logging, try installing [litlogger](https://x) to enable it."
LEAF_SPEC = "`isinstance(treespec, LeafSpec)` is deprecated, use `TreeSpec.is_leaf()` instead."


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("pytorch_lightning", logging.INFO, "x.py", 1, message, None, None)


def test_the_filter_drops_only_the_known_noise():
    quiet = QuietConsole()
    assert not quiet.filter(record(TIP))
    assert not quiet.filter(record("GPU available: False, used: False"))
    assert not quiet.filter(record(f"/site-packages/pl/_pytree.py:21: {LEAF_SPEC}"))
    assert quiet.filter(record("`Trainer.fit` stopped: `max_steps=4` reached."))
    assert quiet.filter(record("stage sft → runs/default/round1/sft"))


def test_noise_leaves_the_console_but_stays_in_train_log(tmp_path, monkeypatch, capsys):
    """The stage's own job logging, in a Hydra job run in process."""
    register_configs()

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
    def task(cfg: DictConfig) -> None:
        logging.captureWarnings(True)  # as safe_rlhf_lightning.cli.train.run does
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                logging.getLogger("pytorch_lightning.utilities.rank_zero").info(TIP)
                warnings.warn(LEAF_SPEC, FutureWarning, stacklevel=1)
                logging.getLogger("safe_rlhf_lightning").info("a useful line")
        finally:
            logging.captureWarnings(False)

    monkeypatch.setattr(
        sys, "argv", ["safe-rlhf-train", f"hydra.run.dir={tmp_path}", "hydra.job.name=train"]
    )
    task()
    console = capsys.readouterr()
    assert "a useful line" in console.out
    assert "litlogger" not in console.out + console.err
    assert "LeafSpec" not in console.out + console.err
    log = (tmp_path / "train.log").read_text()
    assert "a useful line" in log and "litlogger" in log and "LeafSpec" in log


def test_model_summaries_only_when_verbose(tmp_path):
    assert compose_run_config([], tmp_path).trainer.enable_model_summary is False
    assert compose_run_config(["verbose=true"], tmp_path).trainer.enable_model_summary is True
    fast = compose_run_config(["debug=fast", "verbose=true"], tmp_path)
    assert fast.trainer.enable_model_summary is True
