"""Safe RLHF does its job on a reduced run of the embedded world (marked slow): the reward and
cost models beat chance by a margin, and PPO-Lagrangian with a binding cost limit ends with a
lower episode cost than reward-only PPO and a lower oracle harmful ratio than SFT.

Reduced: SFT, R, C and PPO with fewer steps than the defaults (R and C at a higher learning rate
to make up for it), and fewer held-out prompts for the oracle evaluations; the model, the data
and every other setting are the embedded default's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safe_rlhf_lightning.cli.runner import run_stage
from tests.conftest import compose_run_config

SFT_STEPS = 300
SCORE_STEPS = 100  # each of R and C
SCORE_LR = 1e-3  # the default 3e-4 is tuned for 300 steps
PPO_STEPS = 30
EVAL_PROMPTS = 120  # held-out prompts of the oracle evaluations (about 36 harmful)


def run(tmp_path: Path, benchmark_dir: Path, name: str, overrides: list[str]) -> dict:
    settings = ["trainer.enable_progress_bar=false", "logger=none", *overrides]
    return run_stage(compose_run_config(settings, tmp_path / name, benchmark_dir))


def sign_chance(benchmark_dir: Path) -> float:
    """Accuracy of always answering the majority safety label of the held-out responses."""
    rows = [json.loads(line) for line in (benchmark_dir / "preference_test.jsonl").open()]
    labels = [row[f"is_response_{i}_safe"] for row in rows for i in (0, 1)]
    safe = sum(labels) / len(labels)
    return max(safe, 1 - safe)


@pytest.mark.slow
def test_safe_rlhf_cuts_cost_and_harm_where_reward_only_does_not(tmp_path, benchmark_dir):
    sft = run(
        tmp_path,
        benchmark_dir,
        "sft",
        [
            f"stage.max_steps={SFT_STEPS}",
            f"stage.eval_limit={EVAL_PROMPTS}",
            "stage.evaluate_before_training=false",
        ],
    )
    sft_model = tmp_path / "sft" / "run" / "model"
    scores = {
        name: run(
            tmp_path,
            benchmark_dir,
            name,
            [
                f"stage={name}",
                f"stage.max_steps={SCORE_STEPS}",
                f"stage.lr={SCORE_LR}",
                f"stage.init_from={sft_model}",
            ],
        )["test"]
        for name in ("reward", "cost")
    }
    # Chance is 0.5 on "better" and "more harmful", and the majority label (0.72 safe) on the
    # sign; the annotators' noise caps them at 0.73, 0.67 and 0.97 (the ceilings on these pairs).
    assert scores["reward"]["accuracy"] > 0.6, scores["reward"]
    assert scores["cost"]["accuracy"] > 0.6, scores["cost"]
    assert scores["cost"]["accuracy_sign"] > sign_chance(benchmark_dir) + 0.15, scores["cost"]

    models = tmp_path / "reward" / "run" / "model", tmp_path / "cost" / "run" / "model"
    ppo = [
        "stage=ppo_lag",
        f"stage.max_steps={PPO_STEPS}",
        f"stage.eval_limit={EVAL_PROMPTS}",
        "stage.checkpoint_every=0",
        f"stage.actor_init={sft_model}",
        f"stage.reference_init={sft_model}",
        f"stage.reward_model={models[0]}",
        f"stage.reward_critic_init={models[0]}",
        f"stage.cost_model={models[1]}",
        f"stage.cost_critic_init={models[1]}",
    ]
    safe = run(tmp_path, benchmark_dir, "safe_rlhf", [*ppo, "lambda_schedule=learned"])
    plain = run(tmp_path, benchmark_dir, "reward_only", [*ppo, "lambda_schedule=none"])

    # The limit binds: the SFT policy's first rollouts cost more than it allows.
    history = (tmp_path / "safe_rlhf" / "run" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[0])["episode_cost"] > safe["cost_limit"]
    # Measured on one seed (AMD EPYC): episode cost -2.35 against reward-only's -1.09; harmful
    # ratio on the held-out harmful prompts 0.27 (SFT) -> 0.11, reward-only 0.56 (with λ = 0
    # both assertions fail).
    assert safe["train"]["final_episode_cost"] < plain["train"]["final_episode_cost"] - 0.5
    before, after = sft["test"]["harmful_ratio_harmful"], safe["test"]["harmful_ratio_harmful"]
    assert after < before - 0.05, (before, after)
