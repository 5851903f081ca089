"""A quiet console: the stage job logging (conf/hydra/job_logging/stage.yaml) shows a stage's
start and end lines, warnings, errors and progress bars, and keeps known third-party noise and
the details (data loading, summaries) off the console but in the run's ``train.log``; everything
but the noise with ``verbose=true``, and Lightning's model summaries only then."""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings

import hydra
import pytest
from omegaconf import DictConfig

from safe_rlhf_lightning.cli.env import CONSOLE, QuietConsole, console_verbosity
from safe_rlhf_lightning.cli.schema import register_configs
from safe_rlhf_lightning.cli.train import CONF_DIR
from safe_rlhf_lightning.progress import progress, progress_bars
from tests.conftest import TINY_TEST_MODEL, compose_run_config

TIP = "💡 Tip: For seamless cloud logging, try installing [litlogger](https://x) to enable it."
LEAF_SPEC = "`isinstance(treespec, LeafSpec)` is deprecated, use `TreeSpec.is_leaf()` instead."


def record(message: str, level=logging.INFO, **extra) -> logging.LogRecord:
    made = logging.LogRecord("pytorch_lightning", level, "x.py", 1, message, None, None)
    made.__dict__.update(extra)
    return made


def test_the_filter_passes_marked_lines_and_warnings_unless_they_are_known_noise():
    quiet = QuietConsole()
    assert not quiet.filter(record(TIP))
    assert not quiet.filter(record("GPU available: False, used: False"))
    assert not quiet.filter(record(f"/site-packages/pl/_pytree.py:21: {LEAF_SPEC}", 30))
    assert not quiet.filter(record("`Trainer.fit` stopped: `max_steps=4` reached."))
    assert quiet.filter(record("stage sft → runs/default/round1/sft", **CONSOLE))
    assert quiet.filter(record("skipping policy x: no model folder", logging.WARNING))
    assert quiet.filter(record("cannot read data.json", logging.ERROR))
    launcher = record("\t#1 : stage=ppo_lag lambda_schedule=none")
    launcher.name = "hydra._internal.core_plugins.basic_launcher"
    assert quiet.filter(launcher)
    with console_verbosity(True):
        assert quiet.filter(record("`Trainer.fit` stopped: `max_steps=4` reached."))
        assert not quiet.filter(record(TIP))
    assert not quiet.filter(record("`Trainer.fit` stopped: `max_steps=4` reached."))


def test_progress_bars_follow_the_switch(capsys):
    with progress_bars(False):
        assert list(progress(range(3), "sampling sft")) == [0, 1, 2]
    assert capsys.readouterr().out == ""
    with progress_bars(True):
        assert list(progress(range(3), "sampling sft")) == [0, 1, 2]
        assert list(progress(range(2), None)) == [0, 1]  # no description, no bar
    (line,) = capsys.readouterr().out.splitlines()  # not a terminal: the last frame once
    assert line.startswith("sampling sft") and "3/3" in line


def test_noise_leaves_the_console_but_stays_in_train_log(tmp_path, monkeypatch, capsys):
    """The stage's own job logging, in a Hydra job run in process."""
    register_configs()

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
    def task(cfg: DictConfig) -> None:
        # As safe_rlhf_lightning.cli.train.run does; reset first, since a capture left on by
        # another in-process run would keep an older display and make this call a no-op.
        logging.captureWarnings(False)
        logging.captureWarnings(True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                logging.getLogger("pytorch_lightning.utilities.rank_zero").info(TIP)
                warnings.warn(LEAF_SPEC, FutureWarning, stacklevel=1)
                logging.getLogger("safe_rlhf_lightning").info("a useful line", extra=CONSOLE)
                logging.getLogger("safe_rlhf_lightning").info("a detail")
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
    assert "a detail" not in console.out + console.err
    log = (tmp_path / "train.log").read_text()
    assert "a useful line" in log and "litlogger" in log and "LeafSpec" in log
    assert "a detail" in log


def test_model_summaries_only_when_verbose(tmp_path):
    assert compose_run_config([], tmp_path).trainer.enable_model_summary is False
    assert compose_run_config(["verbose=true"], tmp_path).trainer.enable_model_summary is True
    fast = compose_run_config(["debug=fast", "verbose=true"], tmp_path)
    assert fast.trainer.enable_model_summary is True


def _stage_job(monkeypatch, tmp_path, benchmark_dir, *overrides: str) -> None:
    """``safe-rlhf-train`` in this process, with its own job logging (console and train.log)."""
    from safe_rlhf_lightning.cli.train import run

    argv = [
        "safe-rlhf-train",
        "stage=sft",
        "debug=fast",
        "stage.eval_limit=4",
        *TINY_TEST_MODEL,
        f"data.root={benchmark_dir}",
        f"hydra.run.dir={tmp_path}",
        "hydra.job.name=train",
        *overrides,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    run()


BAR = "━"  # rich's bar, in Lightning's bars and ours; a bar's last frame may wrap its metrics


def _bar_names(text: str) -> list[str]:
    """The name of every progress bar's last frame (the text before its bar and count)."""
    return re.findall(rf"^(\S.*?) {BAR}+ \d+/\d+", text, flags=re.MULTILINE)


def _console_lines(text: str) -> list[str]:
    """The console's lines besides progress bars (a wrapped bar line starts with spaces)."""
    return [line for line in text.splitlines() if BAR not in line and not line.startswith(" ")]


@pytest.mark.slow
def test_a_stage_prints_its_start_and_end_and_bars_only(
    tmp_path, benchmark_dir, monkeypatch, capsys
):
    """What ``make demo`` shows of each stage: two lines besides the progress bars (Lightning's
    and the sampling before and after training), nothing on stderr; train.log has the rest."""
    _stage_job(monkeypatch, tmp_path, benchmark_dir)
    console = capsys.readouterr()
    assert console.err == ""
    start, end = _console_lines(console.out)
    assert start.endswith(f"stage sft → {tmp_path}")
    assert re.search(rf"stage sft done in \d+s → {tmp_path / 'summary.md'}$", end)
    bars = _bar_names(console.out)
    assert bars[0] == "sampling before training" and bars[-1] == "sampling after training"
    assert any(bar.startswith("Epoch 0") for bar in bars)
    log = (tmp_path / "train.log").read_text()
    assert "valid supervised records" in log and "oracle evaluation" in log
    # The SFT data's dialogues are single-turn: so says the saved policy, for the chat.
    assert json.loads((tmp_path / "model" / "config.json").read_text())["sft_dialogue_turns"] == 1


@pytest.mark.slow
def test_the_second_job_of_a_pair_draws_no_bar_and_verbose_shows_the_details(
    tmp_path, benchmark_dir, monkeypatch, capsys
):
    _stage_job(
        monkeypatch, tmp_path, benchmark_dir, "trainer.enable_progress_bar=false", "verbose=true"
    )
    console = capsys.readouterr()
    assert _bar_names(console.out) == [] and console.err == ""
    assert "valid supervised records" in console.out and "oracle evaluation" in console.out
    assert "litlogger" not in console.out
