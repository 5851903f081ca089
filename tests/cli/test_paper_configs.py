"""The paper-scale configs compose without touching the hub: the 7B model options with every
stage and GPU trainer, and every launch command of ``experiments/paper_7b.md``."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path

import pytest

from safe_rlhf_lightning.cli.runner import validate_config
from safe_rlhf_lightning.cli.train import CONF_DIR
from tests.conftest import compose_run_config

PAPER_MODELS = {"llama_7b": "huggyllama/llama-7b", "llama2_7b": "meta-llama/Llama-2-7b-hf"}
GPU_TRAINERS = [
    name
    for name in ("gpu", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
    if (Path(CONF_DIR) / "trainer" / f"{name}.yaml").exists()
]
DOCUMENT = Path(CONF_DIR).parent / "experiments" / "paper_7b.md"


# Every stage, each with another GPU trainer (each trainer alone: test_configs.py).
STAGES_AND_TRAINERS = list(
    zip(["ppo_lag", "sft", "reward", "cost", "eval"], itertools.cycle(GPU_TRAINERS[::-1]))
)


@pytest.mark.parametrize(("stage", "trainer"), STAGES_AND_TRAINERS)
@pytest.mark.parametrize("model", list(PAPER_MODELS))
def test_7b_models_compose_with_every_stage_and_gpu_trainer(model, stage, trainer, tmp_path):
    overrides = [f"model={model}", f"stage={stage}", f"trainer={trainer}", "data=pku_saferlhf_v0"]
    typed = validate_config(compose_run_config(overrides, tmp_path))
    assert typed.model.name_or_path == PAPER_MODELS[model]
    assert typed.model.dtype == "bfloat16" and typed.model.trust_remote_code is False


def _launch_commands(markdown: str) -> list[list[str]]:
    """The ``safe-rlhf-train`` commands of the document's bash blocks, as override lists."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("safe-rlhf-train "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_every_launch_command_of_the_7b_document_composes(tmp_path):
    commands = _launch_commands(DOCUMENT.read_text(encoding="utf-8"))
    assert len(commands) == 6  # SFT, R, C, PPO-Lag twice, evaluation
    for words in commands:
        # Hydra's own keys are not part of the composed config; $PPO_STEPS is the shell's.
        overrides = [w.replace("$PPO_STEPS", "1000") for w in words if not w.startswith("hydra.")]
        typed = validate_config(compose_run_config(overrides, tmp_path))
        assert typed.experiment_name == "paper_7b" and typed.data.max_length == 512
        assert typed.model.name_or_path == "huggyllama/llama-7b"
        if typed.stage.name == "ppo_lag":
            assert typed.cost_threshold.cost_limit == 0.0 and typed.stage.kl_coef == 0.01
            assert typed.lambda_schedule["init"] == 1.0
