"""Every config composes and validates; typos and bad values fail early, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from safe_rlhf_lightning.cli.runner import validate_config
from safe_rlhf_lightning.cli.schema import STAGE_SCHEMAS
from safe_rlhf_lightning.cli.train import CONF_DIR
from safe_rlhf_lightning.config import ConfigError, RunConfig
from tests.conftest import compose_run_config

GROUPS = [
    "stage",
    "model",
    "data",
    "trainer",
    "logger",
    "debug",
    "lambda_schedule",
    "cost_threshold",
    "rounds",
]
NEEDS = {("model", "pretrained"): ["model.name_or_path=/some/folder"]}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def compose_run(overrides: list[str], tmp_path: Path):
    return compose_run_config(overrides, tmp_path)


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)], ids=lambda x: str(x)
)
def test_every_option_composes_and_validates(group, option, tmp_path):
    cfg = compose_run([f"{group}={option}", *NEEDS.get((group, option), [])], tmp_path)
    typed = validate_config(cfg)
    assert isinstance(typed, RunConfig)
    assert isinstance(typed.stage, STAGE_SCHEMAS[typed.stage.name])


@pytest.mark.parametrize("stage", _options("stage"))
def test_debug_fast_composes_with_every_stage(stage, tmp_path):
    typed = validate_config(compose_run([f"stage={stage}", "debug=fast"], tmp_path))
    assert typed.trainer.max_steps == 4 and typed.stage.eval_limit == 8


def test_schedules_and_thresholds_compose_into_the_ppo_stage(tmp_path):
    cfg = compose_run(["stage=ppo_lag", "lambda_schedule=pid", "cost_threshold=minus3"], tmp_path)
    typed = validate_config(cfg)
    assert typed.stage.name == "ppo_lag" and typed.cost_threshold.cost_limit == -3.0
    assert typed.lambda_schedule["_target_"].endswith("PIDLambda")
    assert typed.lambda_schedule["cost_limit"] == -3.0  # interpolated from cost_threshold


def test_every_group_has_options():
    for group in GROUPS:
        assert _options(group), group


def test_unknown_key_fails_naming_it(tmp_path):
    with pytest.raises(ConfigCompositionException) as error:
        compose_run(["stage.lrr=0.1"], tmp_path)
    message = str(error.value.__cause__)
    assert "Key 'lrr' not in 'SFTStageConfig'" in message and "full_key: stage.lrr" in message


def test_wrong_type_fails_naming_the_key(tmp_path):
    with pytest.raises(ConfigCompositionException) as error:
        compose_run(["stage.batch_size=many"], tmp_path)
    cause = error.value.__cause__
    assert isinstance(cause, ValidationError) and "stage.batch_size" in str(cause)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stage.lr=-1", "stage.lr"),
        ("stage.adam_betas=[0.9]", "stage.adam_betas"),
        ("stage.lr_scheduler=exotic", "stage.lr_scheduler"),
        ("data.max_length=0", "data.max_length"),
        ("data.prompt_template='USER: ASSISTANT:'", "data.prompt_template"),
        ("model.dtype=float8", "model.dtype"),
        ("model.tiny.num_heads=3", "model.tiny.hidden_size"),
        ("model.lora.r=0", "model.lora.r"),
        ("model.lora.alpha=-16", "model.lora.alpha"),
        ("model.lora.dropout=1.0", "model.lora.dropout"),
        ("model.lora.target_modules=[]", "model.lora.target_modules"),
        ("model.lora.target_modules=[all-linear,q_proj]", "model.lora.target_modules"),
        ("round=0", "round"),
        (["stage=reward", "stage.loss_type=pairwise"], "stage.loss_type"),
        (["stage=cost", "stage.regularization=-1"], "stage.regularization"),
        (["stage=cost", "stage.normalizer_type=Batch"], "stage.normalizer_type"),
        (["stage=ppo_lag", "stage.gamma=1.5"], "stage.gamma"),
        (["stage=ppo_lag", "stage.minibatch_size=0"], "stage.minibatch_size"),
        (["stage=ppo_lag", "stage.top_p=0"], "stage.top_p"),
        (["stage=ppo_lag", "stage.kl_coef=-0.1"], "stage.kl_coef"),
        (["stage=ppo_lag", "lambda_schedule.window=0"], "lambda_schedule"),
    ],
)
def test_bad_values_fail_before_any_model_is_built(override, key, tmp_path):
    cfg = compose_run(override if isinstance(override, list) else [override], tmp_path)
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        validate_config(cfg)


def test_pretrained_model_requires_a_name(tmp_path):
    cfg = compose_run(["model=pretrained"], tmp_path)
    with pytest.raises(ConfigError, match=r"'model\.name_or_path' is required"):
        validate_config(cfg)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safe_rlhf_lightning.cli.train", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_help_and_cfg_job_answer_without_training():
    help_text = _cli("--help")
    assert help_text.returncode == 0, help_text.stderr
    for group in GROUPS:
        assert f"{group}:" in help_text.stdout
    job = _cli("--cfg", "job", "stage.lr=0.002")
    assert job.returncode == 0, job.stderr
    assert "lr: 0.002" in job.stdout


@pytest.mark.slow
def test_cli_reports_a_typo_without_a_traceback():
    result = _cli("stage.lrr=1")
    assert result.returncode != 0
    assert "Key 'lrr' not in 'SFTStageConfig'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_describe_prints_each_option_with_its_value_and_its_one_documentation():
    result = _cli("--describe", "stage=ppo_lag", "stage.kl_coef=0.02")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "# stage: PPOLagStageConfig" in lines and "# model: ModelConfig" in lines
    at = lines.index("stage.kl_coef = 0.02")  # the override, next to the field's docstring
    assert lines[at + 1].strip().startswith("β of the per-token KL penalty")
    inherited = lines.index("stage.lr_warmup_ratio = 0.0")  # PPO's default; the base's doc
    assert "warming the learning rate up" in lines[inherited + 1]
    assert "--describe" in _cli("--help").stdout
