"""The evaluation stage: several policies on the same prompts, scored by the oracle and by R and C,
compared in arenas and by Elo; report, JSON, CSVs and plots; the human-rater round trip."""

from __future__ import annotations

import csv
import json
import shutil
from statistics import fmean

import pytest

from safe_rlhf_lightning.cli.runner import run_stage
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.models import build_tiny_causal_lm, load_tokenizer
from tests.conftest import TEST_MODEL_SIZE, compose_run_config

NUM_PROMPTS = 12


@pytest.fixture(scope="module")
def policies(model_folders, tmp_path_factory):
    """The SFT folder, a second policy with other weights, and a PPO-like run folder (its
    ``model`` beside a ``history.jsonl``) for the training-curve plot."""
    root = tmp_path_factory.mktemp("policies")
    tokenizer = load_tokenizer(model_folders / "sft")
    other = build_tiny_causal_lm(tokenizer, seed=5, **TEST_MODEL_SIZE)
    run = root / "ppo_run"
    other.save_pretrained(run / "model")
    tokenizer.save_pretrained(run / "model")
    history = [
        {
            "step": float(s),
            "reward": 0.1 * s,
            "cost": -0.2 * s,
            "lambda": 1.0 / (s + 1),
            "episode_cost": -0.2 * s,
            "kl_divergence": 0.01 * s,
        }
        for s in range(4)
    ]
    (run / "history.jsonl").write_text("".join(json.dumps(row) + "\n" for row in history))
    return {"sft": model_folders / "sft", "ppo": run / "model"}


def eval_config(tmp_path, benchmark_dir, model_folders, policies: dict, *extra: str):
    listed = ",".join(f"{name}:{folder}" for name, folder in policies.items())
    return compose_run_config(
        [
            "stage=eval",
            f"stage.policies={{{listed}}}",
            f"stage.eval_limit={NUM_PROMPTS}",
            "stage.eval_max_new_tokens=8",
            "stage.rater_pairs=6",
            f"stage.reward_model={model_folders / 'reward'}",
            f"stage.cost_model={model_folders / 'cost'}",
            *extra,
        ],
        tmp_path,
        benchmark_dir,
    )


@pytest.mark.slow
def test_eval_stage_writes_report_json_arenas_elo_and_plots(
    policies, model_folders, tmp_path, benchmark_dir
):
    # The SFT folder twice under two names: same sampling seed, so the same responses.
    three = {"sft": policies["sft"], "sft_again": policies["sft"], "ppo": policies["ppo"]}
    results = run_stage(eval_config(tmp_path, benchmark_dir, model_folders, three))
    run_dir = tmp_path / "run"

    samples = {
        name: [json.loads(line) for line in (run_dir / f"samples_{name}.jsonl").open()]
        for name in three
    }
    assert all(len(rows) == NUM_PROMPTS for rows in samples.values())
    assert [r["response"] for r in samples["sft"]] == [r["response"] for r in samples["sft_again"]]
    assert [r["prompt"] for r in samples["sft"]] == [r["prompt"] for r in samples["ppo"]]
    for name, rows in samples.items():
        metrics = results["metrics"][name]
        # Per-policy numbers are the means of the per-response scores written beside them.
        assert metrics["reward_mean"] == pytest.approx(fmean(r["reward"] for r in rows))
        assert metrics["cost_mean"] == pytest.approx(fmean(r["cost"] for r in rows))
        assert metrics["cost_unsafe_share"] == pytest.approx(fmean(r["cost"] > 0 for r in rows))
        assert metrics["harmful_ratio"] == pytest.approx(
            fmean(not r["oracle_is_safe"] for r in rows)
        )
        assert metrics["num_responses"] == NUM_PROMPTS

    # Arenas: the reference (first policy) against each other one, one CSV row per prompt.
    assert set(results["arenas"]) == {"sft_vs_sft_again", "sft_vs_ppo"}
    same = results["arenas"]["sft_vs_sft_again"]
    assert same["reward_ties"] == NUM_PROMPTS and same["b_win_rate_reward"] == 0.5
    with (run_dir / "arena_sft_vs_ppo.csv").open(encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == NUM_PROMPTS

    # Elo per judge and axis; identical policies get identical ratings.
    assert set(results["elo"]) == {"oracle", "reward and cost models"}
    for axes in results["elo"].values():
        for ratings in axes.values():
            assert set(ratings) == set(three)
            assert ratings["sft"] == pytest.approx(ratings["sft_again"])

    for plot in ("policy_plane", "reward_distribution", "cost_distribution", "training_curves"):
        assert (run_dir / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    report = (run_dir / "report.md").read_text()
    for text in (
        "Oracle metrics",
        "Elo ratings judged by oracle",
        "Arena sft vs ppo",
        "![policy_plane.png](policy_plane.png)",
        "rater_pairs.csv",
    ):
        assert text in report
    # The headline check against SFT: the copy of SFT differs by nothing on any prompt.
    assert "## Safer and more helpful than SFT? (the headline check)" in report
    zero = "+0.000 ± 0.000"
    assert f"| sft_again | all | {NUM_PROMPTS} | {zero} | {zero} | {zero} |" in report
    assert "sft_again: helpfulness on harmful prompts not below SFT" in report
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == results["metrics"]


@pytest.mark.slow
def test_rater_judgements_read_back_into_an_elo_table(
    policies, model_folders, tmp_path, benchmark_dir
):
    run_stage(eval_config(tmp_path, benchmark_dir, model_folders, policies))
    exported = tmp_path / "run" / "rater_pairs.csv"
    key = json.loads((tmp_path / "run" / "rater_pairs.key.json").read_text())
    # A rater who always prefers the ppo policy on helpfulness and sft on harmlessness.
    rows = list(csv.DictReader(exported.open(encoding="utf-8")))
    assert rows and "sft" not in exported.read_text().split("\n")[0]  # blind header
    for row in rows:
        left = key[row["pair_id"]]["policy_left"]
        row["more_helpful"] = "left" if left == "ppo" else "right"
        row["more_harmless"] = "left" if left == "sft" else "right"
    filled = tmp_path / "filled.csv"
    with filled.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shutil.copy(tmp_path / "run" / "rater_pairs.key.json", tmp_path / "filled.key.json")

    judged = f"stage.rater_judgements={filled}"
    results = run_stage(eval_config(tmp_path, benchmark_dir, model_folders, policies, judged))
    human = results["elo"]["human raters"]
    assert human["helpfulness"]["ppo"] > human["helpfulness"]["sft"]
    assert human["harmlessness"]["sft"] > human["harmlessness"]["ppo"]
    assert "Elo ratings judged by human raters" in (tmp_path / "run" / "report.md").read_text()


def test_missing_policy_is_an_error_naming_it_or_skipped_when_asked(
    policies, model_folders, tmp_path, benchmark_dir
):
    wanted = {"sft": policies["sft"], "gone": tmp_path / "nowhere"}
    with pytest.raises(ConfigError, match=r"stage\.policies\.gone"):
        run_stage(eval_config(tmp_path, benchmark_dir, model_folders, wanted))
    results = run_stage(
        eval_config(tmp_path, benchmark_dir, model_folders, wanted, "stage.missing_policy=skip")
    )
    assert list(results["metrics"]) == ["sft"] and results["arenas"] == {}


def test_bad_arena_pair_and_missing_judge_name_the_key(
    policies, model_folders, tmp_path, benchmark_dir
):
    cfg = eval_config(tmp_path, benchmark_dir, model_folders, policies, "stage.arenas=[[sft,x]]")
    with pytest.raises(ConfigError, match=r"stage\.arenas"):
        run_stage(cfg)
    cfg = eval_config(
        tmp_path, benchmark_dir, model_folders, policies, f"stage.cost_model={tmp_path}/none"
    )
    with pytest.raises(ConfigError, match=r"stage\.cost_model"):
        run_stage(cfg)
