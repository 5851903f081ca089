"""The ``logger`` group: every option builds; real stage runs write wandb (offline) and TensorBoard
files holding the run's config; wandb goes online only when an API key is configured. A wandb run
is read through wandb's own ``Run`` (name, group, tags, config, summary): in offline mode wandb
0.31 writes neither ``wandb-summary.json`` nor ``config.yaml``, only its binary transaction log."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from safe_rlhf_lightning.cli.loggers import build_loggers, choose_wandb_offline
from safe_rlhf_lightning.cli.runner import run_stage, validate_config
from safe_rlhf_lightning.cli.train import CONF_DIR
from tests.conftest import TINY_TEST_MODEL, compose_run_config

LOGGER_OPTIONS = sorted(p.stem for p in (Path(CONF_DIR) / "logger").glob("*.yaml"))
LOGGER_TYPES = {"csv": CSVLogger, "tensorboard": TensorBoardLogger, "wandb": WandbLogger}
EXPERIMENT = "loggers-e2e"


@pytest.fixture
def no_wandb_key(monkeypatch, tmp_path):
    """No W&B key and no WANDB_MODE, as on a fresh machine; wandb's own folders under tmp_path."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    # Restored afterwards: Lightning's WandbLogger(offline=True) writes WANDB_MODE=dryrun.
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


@pytest.fixture
def finish_wandb():
    yield
    import wandb

    wandb.finish()  # a run left open by a failed test would be reused by the next WandbLogger


# -- choosing the wandb mode (never goes online) --------------------------------------------------


def test_wandb_is_offline_without_a_key(no_wandb_key):
    assert choose_wandb_offline(None) == (True, "no W&B API key configured")


def test_wandb_is_online_with_a_key_in_the_environment(no_wandb_key, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert choose_wandb_offline(None)[0] is False
    for mode in ("offline", "disabled", "dryrun"):
        monkeypatch.setenv("WANDB_MODE", mode)
        assert choose_wandb_offline(None) == (True, f"WANDB_MODE={mode}")


def test_wandb_is_online_with_the_key_wandb_login_writes(no_wandb_key, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org\n  login user\n  password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert choose_wandb_offline(None)[0] is True  # a key for another host
    netrc.write_text(netrc.read_text() + "machine api.wandb.ai\n  login user\n  password key\n")
    assert choose_wandb_offline(None) == (False, "a W&B API key is configured")


def test_an_explicit_wandb_mode_is_honoured(no_wandb_key, monkeypatch):
    assert choose_wandb_offline(False) == (False, "logger.wandb.offline=false")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert choose_wandb_offline(True) == (True, "logger.wandb.offline=true")


# -- every option composes and builds -------------------------------------------------------------


@pytest.mark.parametrize("option", LOGGER_OPTIONS)
def test_every_logger_option_builds_its_loggers(option, tmp_path, no_wandb_key, monkeypatch):
    sent = {}
    # Keeps wandb from starting a run here; the stage runs below check what wandb really gets.
    monkeypatch.setattr(WandbLogger, "log_hyperparams", lambda self, p: sent.update(wandb=p))
    cfg = compose_run_config([f"logger={option}", f"experiment_name={EXPERIMENT}"], tmp_path)
    validate_config(cfg)
    loggers = build_loggers(cfg)

    names = set() if option == "none" else set(option.split("_"))
    assert {type(logger) for logger in loggers} == {LOGGER_TYPES[name] for name in names}
    for logger in loggers:
        assert Path(logger.save_dir) == tmp_path / "run"
        if isinstance(logger, WandbLogger):
            assert logger._offline  # no key: offline
            hparams = sent["wandb"]
        else:  # CSV and TensorBoard write the hyperparameters into their version folder
            logger.save()
            hparams = yaml.safe_load((Path(logger.log_dir) / "hparams.yaml").read_text())
        assert hparams["experiment_name"] == EXPERIMENT and hparams["stage"]["name"] == "sft"
    if "wandb" in names:
        wandb_cfg = cfg.logger.wandb
        assert wandb_cfg.group == EXPERIMENT and wandb_cfg.job_type == "sft"
        assert hparams["launch"]["data_manifest_sha256"] is None  # no benchmark written here


# -- real stage runs -------------------------------------------------------------------------------


def stage_config(tmp_path, benchmark_dir, *overrides: str):
    return compose_run_config(
        [
            "debug=fast",
            "stage.eval_limit=4",
            f"experiment_name={EXPERIMENT}",
            "round=2",
            *TINY_TEST_MODEL,
            *overrides,
        ],
        tmp_path,
        benchmark_dir,
    )


@pytest.mark.slow
def test_sft_stage_writes_an_offline_wandb_run_with_its_config_and_results(
    tmp_path, benchmark_dir, no_wandb_key, finish_wandb, caplog, capsys
):
    import wandb

    cfg = stage_config(tmp_path, benchmark_dir, "logger=wandb")
    with caplog.at_level("INFO"):
        results = run_stage(cfg)
    assert "wandb offline (no W&B API key configured)" in caplog.messages
    summary_md = tmp_path / "run" / "summary.md"
    assert any(  # the console's end line
        m.startswith("stage sft done in ") and m.endswith(f" → {summary_md}")
        for m in caplog.messages
    )

    run = wandb.run  # the stage's run stays open until the process (or the next stage) ends it
    assert run is not None and run.offline
    assert run.group == EXPERIMENT and run.job_type == "sft"
    assert run.name == f"{EXPERIMENT}-round2-sft"
    assert list(run.tags) == [EXPERIMENT, "round2", "sft"]
    config = dict(run.config)
    assert config["experiment_name"] == EXPERIMENT and config["round"] == 2
    assert config["run_dir"] == str(tmp_path / "run")  # resolved, not "${hydra:...}"
    launch = config["launch"]
    manifest = (benchmark_dir / "manifest.json").read_bytes()
    assert launch["data_manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert launch["swept"] == {}  # a single run sweeps nothing
    assert launch["git_commit"] is None or len(launch["git_commit"]) == 40
    summary = dict(run.summary)
    # The metrics logged during the run, and results.json flattened (what the runs table sorts by)
    assert {"train/loss", "val/loss", "init/helpfulness", "test/helpfulness"} <= set(summary)
    assert summary["test/harmful_ratio"] == pytest.approx(results["test"]["harmful_ratio"])
    assert summary["init/helpfulness"] == pytest.approx(results["init"]["helpfulness"])

    wandb.finish()  # what the end of the process does in the CLI: flushes the run's files
    # wandb's own lines (its header, the offline hint, the footer) went to the log (train.log
    # in the CLI), not to stderr.
    assert "wandb:" not in capsys.readouterr().err
    wandb_lines = [r.getMessage() for r in caplog.records if r.name.endswith("loggers.wandb")]
    assert any("Tracking run with wandb version" in line for line in wandb_lines)
    assert any("offline" in line for line in wandb_lines)
    (folder,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert list(folder.glob("run-*.wandb")) and (folder / "logs" / "debug.log").exists()


@pytest.mark.slow
def test_sft_stage_writes_tensorboard_events(tmp_path, benchmark_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_stage(stage_config(tmp_path, benchmark_dir, "logger=tensorboard"))
    (version,) = (tmp_path / "run" / "tensorboard").glob("version_*")
    assert list(version.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(version))
    events.Reload()
    assert {"train/loss", "val/loss", "test/helpfulness"} <= set(events.Tags()["scalars"])
    hparams = yaml.safe_load((version / "hparams.yaml").read_text())
    assert hparams["experiment_name"] == EXPERIMENT and hparams["stage"]["name"] == "sft"


@pytest.mark.slow
def test_ppo_stage_logs_sample_tables_to_wandb(
    model_folders,
    tmp_path,
    benchmark_dir,
    no_wandb_key,
    finish_wandb,
):
    import wandb

    cfg = compose_run_config(
        [
            "stage=ppo_lag",
            "debug=fast",
            "logger=wandb",
            "stage.max_steps=2",
            "stage.batch_size=2",
            "stage.num_return_sequences=2",
            "stage.max_new_tokens=8",
            "stage.minibatch_size=4",
            "stage.eval_limit=0",
            "stage.log_samples_every=1",
            f"stage.actor_init={model_folders / 'sft'}",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    run_stage(cfg)
    wandb.finish()
    (run,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    tables = sorted(run.glob("files/media/table/train/samples_*.table.json"))
    assert len(tables) == 2  # one per PPO step
    table = json.loads(tables[0].read_text())
    assert {"prompt", "response"} <= set(table["columns"]) and len(table["data"]) == 2 * 2


@pytest.mark.slow
def test_eval_stage_sends_its_metrics_and_samples_to_wandb(
    model_folders, tmp_path, benchmark_dir, no_wandb_key, finish_wandb
):
    import wandb

    sft = model_folders / "sft"
    cfg = compose_run_config(
        [
            "stage=eval",
            "logger=wandb",
            f"experiment_name={EXPERIMENT}",
            f"stage.policies={{sft:{sft},sft_again:{sft}}}",
            "stage.eval_limit=4",
            "stage.eval_max_new_tokens=4",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
        ],
        tmp_path,
        benchmark_dir,
    )
    results = run_stage(cfg)
    run = wandb.run
    assert run is not None and run.name == f"{EXPERIMENT}-round1-eval" and run.job_type == "eval"
    summary = dict(run.summary)
    for policy in ("sft", "sft_again"):
        for metric in ("harmful_ratio", "helpfulness"):
            expected = results["metrics"][policy][metric]
            assert summary[f"metrics/{policy}/{metric}"] == pytest.approx(expected)
    wandb.finish()
    (folder,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    for policy in ("sft", "sft_again"):
        (table_file,) = folder.glob(f"files/media/table/samples/{policy}_[0-9]*.table.json")
        table = json.loads(table_file.read_text())
        samples = (tmp_path / "run" / f"samples_{policy}.jsonl").read_text().splitlines()
        assert {"prompt", "response"} <= set(table["columns"])
        assert [row[table["columns"].index("response")] for row in table["data"]] == [
            json.loads(line)["response"] for line in samples
        ]
