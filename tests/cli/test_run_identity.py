"""What tells a run apart from its siblings in W&B: its name, tags and launch record, made from
the experiment, round, stage, λ schedule and the values a multirun sweeps; and a stage's results
flattened into the run summary's keys."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import hydra
import pytest
from omegaconf import DictConfig

from safe_rlhf_lightning.cli.loggers import (
    Launch,
    flatten_results,
    git_commit,
    launch_of,
    manifest_digest,
    swept_keys,
    wandb_run_name,
    wandb_run_tags,
)
from safe_rlhf_lightning.cli.schema import register_configs
from safe_rlhf_lightning.cli.train import CONF_DIR
from tests.conftest import compose_run_config


def test_the_schedule_and_each_swept_value_make_the_name_unique():
    learned, none = Launch(schedule="learned"), Launch(schedule="none")
    assert wandb_run_name("demo", 1, "ppo_lag", learned) == "demo-round1-ppo_lag-learned"
    assert wandb_run_name("demo", 1, "ppo_lag", none) == "demo-round1-ppo_lag-none"
    assert wandb_run_name("demo", 2, "reward", learned) == "demo-round2-reward"  # no λ there
    swept = Launch(swept={"lambda_schedule.nu": "0.5", "seed": "1"}, schedule="fixed")
    assert wandb_run_name("demo", 1, "ppo_lag", swept) == "demo-round1-ppo_lag-fixed-nu0.5-seed1"
    # A swept group is named by its option, once; a negative value reads after its key.
    swept = {"lambda_schedule": "pid", "cost_threshold.cost_limit": "-2.0", "model": "tiny"}
    group = Launch([], swept, "pid", frozenset({"lambda_schedule", "model", "stage"}))
    assert wandb_run_name("x", 1, "ppo_lag", group) == "x-round1-ppo_lag-pid-cost_limit-2.0-tiny"


def test_a_critic_free_estimator_is_in_the_name_and_every_estimator_in_the_tags():
    grpo = Launch(schedule="pid", estimator="grpo")
    assert wandb_run_name("demo", 1, "ppo_lag", grpo) == "demo-round1-ppo_lag-pid-grpo"
    gae = Launch(schedule="learned", estimator="gae")  # the default keeps today's names
    assert wandb_run_name("demo", 1, "ppo_lag", gae) == "demo-round1-ppo_lag-learned"
    assert "advantage=gae" in wandb_run_tags("demo", 1, "ppo_lag", None, gae)
    assert "advantage=grpo" not in wandb_run_tags("demo", 1, "sft", None, grpo)


def test_tags_name_round_stage_schedule_sweep_and_each_swept_key():
    launch = Launch(swept={"lambda_schedule.nu": "0.5"}, schedule="fixed")
    assert wandb_run_tags("demo", 1, "ppo_lag", "nu", launch) == [
        "demo",
        "round1",
        "ppo_lag",
        "schedule=fixed",
        "nu",
        "lambda_schedule.nu=0.5",
    ]
    assert wandb_run_tags("demo", 3, "sft", None, Launch(schedule="learned")) == [
        "demo",
        "round3",
        "sft",
    ]


def test_swept_keys_are_the_overrides_with_several_values():
    arguments = ["-m", "stage=ppo_lag", "lambda_schedule.nu=0.01,0.5", "seed=range(1,3)"]
    arguments += ["lambda_schedule=fixed", "-cn", "train", "data.root=a,b"]
    assert swept_keys(arguments) == {"lambda_schedule.nu", "seed", "data.root"}


def test_results_flatten_to_summary_keys():
    results = {
        "test": {"harmful_ratio": 0.25, "harmful_ratio/Privacy": 0.5, "num_pairs": 4},
        "train": {"train/loss": 0.7},
        "metrics": {"sft": {"helpfulness": 1.5}},
        "plots": ["a.png"],
        "safe": True,
    }
    assert flatten_results(results) == {
        "test/harmful_ratio": 0.25,
        "test/harmful_ratio/Privacy": 0.5,
        "test/num_pairs": 4,
        "train/loss": 0.7,
        "metrics/sft/helpfulness": 1.5,
        "safe": True,
    }


def test_git_commit_and_data_digest(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout: no failure, no commit
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert git_commit(tmp_path) is None  # a checkout without a commit yet
    assert manifest_digest(str(tmp_path)) is None
    (tmp_path / "manifest.json").write_text('{"seed": 0}\n')
    expected = hashlib.sha256(b'{"seed": 0}\n').hexdigest()
    assert manifest_digest(str(tmp_path)) == expected


def test_a_hydra_multirun_gives_each_job_its_swept_values(tmp_path, monkeypatch):
    """Hydra's own multirun, in process: each job sees its swept values and the overrides."""
    register_configs()
    seen: list[Launch] = []

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
    def task(cfg: DictConfig) -> None:
        seen.append(launch_of(cfg))

    argv = ["safe-rlhf-train", "-m", "stage=ppo_lag", "lambda_schedule=fixed"]
    argv += ["lambda_schedule.nu=0.5,2", "seed=1", f"hydra.sweep.dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", argv)
    task()

    assert [launch.swept for launch in seen] == [
        {"lambda_schedule.nu": "0.5"},
        {"lambda_schedule.nu": "2"},
    ]
    assert seen[0].schedule == "fixed"
    assert seen[0].overrides == [
        "stage=ppo_lag",
        "lambda_schedule=fixed",
        "lambda_schedule.nu=0.5",
        "seed=1",
    ]
    names = {wandb_run_name("demo", 1, "ppo_lag", launch) for launch in seen}
    assert names == {"demo-round1-ppo_lag-fixed-nu0.5", "demo-round1-ppo_lag-fixed-nu2"}


@pytest.fixture(autouse=True)
def _forget_hydra_job():
    """A job run here leaves Hydra's job config set: later tests run outside any Hydra job."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


@pytest.mark.parametrize(
    ("preset", "folders"),
    [
        ("sweep_nu", ["nu_0.01", "nu_0.5", "nu_1.0", "nu_2.0", "nu_5.0", "nu_10.0", "nu_100.0"]),
        ("sweep_lambda", ["learned", "pid", "none"]),
        ("sweep_cost_limit", ["d_-1.5", "d_-2.0", "d_-2.5", "d_-3.0"]),
        ("sweep_seeds", ["seed_1", "seed_2", "seed_3"]),
    ],
)
def test_each_sweep_preset_is_one_multirun_with_a_run_per_value(
    preset, folders, tmp_path, monkeypatch
):
    register_configs()
    jobs: list[tuple[str, str, str]] = []

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
    def task(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        name = wandb_run_name(cfg.experiment_name, cfg.round, cfg.stage.name, launch_of(cfg))
        jobs.append((cfg.stage.name, HydraConfig.get().runtime.output_dir, name))

    argv = ["safe-rlhf-train", "-m", f"+experiment={preset}", f"paths.runs_dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", [*argv, "experiment_name=demo"])
    task()

    sweep_name = preset.removeprefix("sweep_").replace("_", "-")
    sweep_dir = tmp_path / "demo" / "sweeps" / sweep_name
    assert [stage for stage, _, _ in jobs] == ["ppo_lag"] * len(folders)
    assert [output for _, output, _ in jobs] == [str(sweep_dir / f) for f in folders]
    assert len({name for _, _, name in jobs}) == len(folders)  # one distinct W&B run per value


def test_a_grid_on_the_command_line_replaces_the_presets(tmp_path, monkeypatch):
    register_configs()
    values: list[float] = []

    @hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
    def task(cfg: DictConfig) -> None:
        values.append(cfg.lambda_schedule.nu)

    argv = ["safe-rlhf-train", "-m", "+experiment=sweep_nu", "lambda_schedule.nu=0.5,2"]
    monkeypatch.setattr(sys, "argv", [*argv, f"paths.runs_dir={tmp_path}"])
    task()
    assert values == [0.5, 2.0]


@pytest.mark.parametrize("option", ["learned", "pid", "fixed", "none"])
def test_outside_a_hydra_job_the_schedule_is_named_as_its_option(option, tmp_path):
    launch = launch_of(compose_run_config([f"lambda_schedule={option}"], tmp_path))
    assert launch == Launch(schedule=option)
