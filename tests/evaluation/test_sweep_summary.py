"""Sweep summary: run discovery, labels, win rates against SFT and paired verdicts against Safe
RLHF computed by hand on six prompts, the reward-shaping verdict, and the files written."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from safe_rlhf_lightning.evaluation.sweep_summary import (
    SummaryError,
    discover_runs,
    label_runs,
    load_run,
    method_of,
    paired_comparison,
    summarize,
    verdict_sentence,
    win_rates,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROMPTS = [f"prompt {i}" for i in range(6)]
SCHEDULES = "safe_rlhf_lightning.lagrange."

# Per-prompt oracle scores (helpfulness, cost); a response is safe iff its cost <= 0 here.
SFT = ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0, -1.0, -1.0])  # harmful 4/6
SAFE_RLHF = ([1.5, 1.0, 0.5, 1.5, 1.0, 2.0], [1.0, 2.0, 2.0, -1.0, -1.0, -2.0])  # harmful 3/6
# ν=1 is more helpful than Safe RLHF on every prompt and safe where it was not: it dominates.
NU_1 = ([2.5, 2.0, 1.5, 2.5, 2.0, 3.5], [-1.0, -1.0, -1.0, -1.0, -1.0, -2.0])
NU_SMALL = ([3.0] * 6, [2.0] * 6)  # ν=0.01: more helpful, all harmful
NU_LARGE = ([0.0] * 6, [-2.0] * 6)  # ν=10: all safe, unhelpful


def write_run(
    folder: Path, scores, *, stage="ppo_lag", schedule="LearnedLambda", prompts=PROMPTS, **config
) -> Path:
    """A run folder as the sft / ppo_lag stages write it, reduced to what the summary reads."""
    helpfulness, cost = scores
    folder.mkdir(parents=True)
    lambda_schedule = {"_target_": SCHEDULES + schedule}
    if schedule == "FixedLambda":
        lambda_schedule["nu"] = config.pop("nu")
    if schedule == "LearnedLambda":
        lambda_schedule["lr"] = config.pop("lr", 0.5)
    full = {
        "stage": {"name": stage},
        "lambda_schedule": lambda_schedule,
        "cost_threshold": {"cost_limit": -2.0},
        "experiment_name": "t",
        "round": 1,
        "seed": 42,
        **config,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(full, allow_unicode=True))
    samples = [
        {"prompt": p, "response": "r", "helpfulness": h, "cost": c, "is_safe": c <= 0}
        for p, h, c in zip(prompts, helpfulness, cost, strict=True)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    test = {
        "harmful_ratio": sum(c > 0 for c in cost) / len(cost),
        "helpfulness": sum(helpfulness) / len(helpfulness),
        "helpfulness_benign": sum(helpfulness) / len(helpfulness) + 0.25,
        "cost": sum(cost) / len(cost),
        "num_responses": float(len(cost)),
    }
    (folder / "results.json").write_text(json.dumps({"test": test, "init": {}}))
    return folder


def fixed(nu: float) -> dict:
    return {"schedule": "FixedLambda", "nu": nu}


@pytest.fixture
def sweep(tmp_path) -> dict[str, Path]:
    """A Hydra-multirun-like sweep (``<sweep>/<job>/``) and the SFT run beside it."""
    folders = {
        "sft": write_run(tmp_path / "round1" / "sft", SFT, stage="sft"),
        "safe_rlhf": write_run(tmp_path / "sweep" / "0", SAFE_RLHF),
        "nu_small": write_run(tmp_path / "sweep" / "1", NU_SMALL, **fixed(0.01)),
        "nu_1": write_run(tmp_path / "sweep" / "2", NU_1, **fixed(1.0)),
        "nu_large": write_run(tmp_path / "sweep" / "10", NU_LARGE, **fixed(10.0)),
    }
    (tmp_path / "sweep" / "2" / ".hydra").mkdir()  # Hydra's own files do not matter
    return {"root": tmp_path, "sweep": tmp_path / "sweep", **folders}


def test_discovery_finds_runs_at_any_depth_in_natural_order(sweep):
    found = discover_runs([sweep["sweep"]])
    assert [folder.name for folder in found] == ["0", "1", "2", "10"]
    # A run folder given directly, and twice, is listed once.
    both = discover_runs([sweep["sft"], sweep["sweep"] / "1", sweep["sweep"]])
    assert len(both) == 5
    assert both.count(sweep["sft"].resolve()) == 1


def test_discovery_names_a_path_without_runs(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "empty" / "deeper" / "results.json").write_text("{}")  # not a whole run
    with pytest.raises(SummaryError, match=r"empty: holds no run folder"):
        discover_runs([tmp_path / "empty"])
    with pytest.raises(SummaryError, match="missing: no such folder"):
        discover_runs([tmp_path / "missing"])
    assert issubclass(SummaryError, ValueError)


def test_methods_and_labels_show_only_the_keys_that_vary(sweep):
    folders = [sweep[k] for k in ("sft", "safe_rlhf", "nu_small", "nu_1", "nu_large")]
    runs = label_runs([load_run(folder) for folder in folders])
    assert [run.method for run in runs] == ["SFT", "Safe RLHF", *["reward shaping"] * 3]
    # Only ν varies (λ lr is set in one run only; seed, round and d are the same everywhere).
    assert [run.label for run in runs] == [
        "SFT",
        "Safe RLHF",
        "reward shaping ν=0.01",
        "reward shaping ν=1",
        "reward shaping ν=10",
    ]
    assert runs[0].metrics["harmful_ratio"] == pytest.approx(4 / 6)
    assert [s["helpfulness"] for s in runs[1].samples] == SAFE_RLHF[0]


def test_labels_of_other_keys_and_clashes(tmp_path):
    runs = label_runs(
        [
            load_run(write_run(tmp_path / "a", SAFE_RLHF, seed=1)),
            load_run(write_run(tmp_path / "b", SAFE_RLHF, seed=2, round=2)),
            load_run(write_run(tmp_path / "c", SAFE_RLHF, seed=2, round=2)),
            load_run(write_run(tmp_path / "d", SAFE_RLHF, schedule="PIDLambda", lr=None)),
            load_run(write_run(tmp_path / "e", SAFE_RLHF, schedule="NoLambda", lr=None, seed=1)),
        ]
    )
    assert [run.label for run in runs] == [
        "Safe RLHF seed=1, round 1",
        "Safe RLHF seed=2, round 2 (b)",
        "Safe RLHF seed=2, round 2 (c)",
        "PID λ seed=42, round 1",
        "reward only seed=1, round 1",
    ]
    limits = label_runs(
        [
            load_run(write_run(tmp_path / "f", SAFE_RLHF, cost_threshold={"cost_limit": -2.25})),
            load_run(write_run(tmp_path / "g", SAFE_RLHF, lr=0.1)),
        ]
    )
    assert [run.label for run in limits] == [
        "Safe RLHF d=-2.25, λ lr=0.5",
        "Safe RLHF d=-2, λ lr=0.1",
    ]


def test_win_rates_against_sft_count_ties_half(sweep):
    sft = load_run(sweep["sft"])
    # helpfulness vs SFT's 1.0: win, tie, loss, win, tie, win -> (3 + 2 * 0.5) / 6;
    # cost vs SFT's (2, 2, 2, 2, -1, -1): lower, tie, tie, lower, tie, lower -> (3 + 3 * 0.5) / 6.
    assert win_rates(load_run(sweep["safe_rlhf"]), sft) == {
        "helpfulness_win_rate": 4 / 6,
        "harmlessness_win_rate": 4.5 / 6,
    }
    assert win_rates(load_run(sweep["nu_small"]), sft) == {
        "helpfulness_win_rate": 1.0,
        "harmlessness_win_rate": 2 / 6,  # four ties, two losses
    }
    assert win_rates(sft, sft) == {"helpfulness_win_rate": 0.5, "harmlessness_win_rate": 0.5}


def test_paired_comparison_against_safe_rlhf(sweep):
    baseline = load_run(sweep["safe_rlhf"])
    result = paired_comparison(load_run(sweep["nu_1"]), baseline)
    # Helpfulness differences (1, 1, 1, 1, 1, 1.5): mean 6.5/6, sample std sqrt(1/24), SE 1/12.
    assert result["helpfulness"]["diff"] == pytest.approx(6.5 / 6)
    assert result["helpfulness"]["se"] == pytest.approx(1 / 12)
    assert result["helpfulness"]["verdict"] == "better"
    # Harmful indicator differences (-1, -1, -1, 0, 0, 0): mean -0.5, std sqrt(0.3), SE sqrt(0.05);
    # 0.5 >= 2 * 0.2236, so lower harm beyond noise.
    assert result["harmful_ratio"]["diff"] == pytest.approx(-0.5)
    assert result["harmful_ratio"]["se"] == pytest.approx(math.sqrt(0.05))
    assert result["harmful_ratio"]["verdict"] == "better"

    large = paired_comparison(load_run(sweep["nu_large"]), baseline)
    assert large["helpfulness"]["verdict"] == "worse"
    assert large["harmful_ratio"]["verdict"] == "better"
    itself = paired_comparison(baseline, baseline)  # SE 0 and difference 0
    assert {axis["verdict"] for axis in itself.values()} == {"within noise"}
    assert itself["helpfulness"]["se"] == 0.0


def test_small_differences_are_within_noise(tmp_path):
    baseline = load_run(write_run(tmp_path / "base", SAFE_RLHF))
    # One prompt made safe: harmful differences (0, 0, -1, 0, 0, 0), mean -1/6, SE 1/6 > 1/12.
    one_safer = (SAFE_RLHF[0], [1.0, 2.0, -1.0, -1.0, -1.0, -2.0])
    result = paired_comparison(load_run(write_run(tmp_path / "run", one_safer)), baseline)
    assert result["harmful_ratio"]["diff"] == pytest.approx(-1 / 6)
    assert result["harmful_ratio"]["se"] == pytest.approx(1 / 6)
    assert result["harmful_ratio"]["verdict"] == "within noise"


def test_prompt_mismatch_names_both_files_and_the_line(tmp_path):
    sft = load_run(write_run(tmp_path / "sft", SFT, stage="sft"))
    other = [*PROMPTS[:3], "another prompt", *PROMPTS[4:]]
    run = load_run(write_run(tmp_path / "run", SAFE_RLHF, prompts=other))
    with pytest.raises(SummaryError, match=r"run/samples\.jsonl and .*sft/samples\.jsonl.*line 4"):
        win_rates(run, sft)
    shorter = load_run(write_run(tmp_path / "short", ([1.0] * 5, [0.0] * 5), prompts=PROMPTS[:5]))
    with pytest.raises(SummaryError, match="line 6"):
        paired_comparison(shorter, sft)


def test_runs_with_another_prompt_order_are_paired_by_prompt(tmp_path):
    # Another seed shuffles the held-out prompts: the pairs must follow the prompts, not lines.
    sft = load_run(write_run(tmp_path / "sft", SFT, stage="sft"))
    run = load_run(write_run(tmp_path / "run", SAFE_RLHF))
    order = [5, 2, 0, 4, 1, 3]
    shuffled_scores = tuple([values[i] for i in order] for values in SAFE_RLHF)
    shuffled = load_run(
        write_run(tmp_path / "shuffled", shuffled_scores, prompts=[PROMPTS[i] for i in order])
    )
    assert win_rates(shuffled, sft) == win_rates(run, sft)
    assert paired_comparison(sft, shuffled) == paired_comparison(sft, run)


def test_summary_names_the_dominating_run(sweep, tmp_path):
    result = summarize([sweep["sweep"]], sweep["sft"], tmp_path / "out")
    verdict = result["verdict"]
    assert verdict.startswith("Reward shaping beats Safe RLHF (Safe RLHF) on both axes")
    assert verdict.endswith(": reward shaping ν=1.")
    assert "ν=0.01" not in verdict and "ν=10" not in verdict
    rows = {row["label"]: row for row in result["rows"]}
    assert list(rows) == [
        "SFT",
        "Safe RLHF",
        "reward shaping ν=0.01",
        "reward shaping ν=1",
        "reward shaping ν=10",
    ]
    assert rows["SFT"]["helpfulness_win_rate"] == 0.5
    assert rows["Safe RLHF"]["harmlessness_win_rate"] == 4.5 / 6
    assert rows["reward shaping ν=1"]["helpfulness_win_rate"] == 1.0
    assert rows["reward shaping ν=1"]["harmlessness_win_rate"] == 5.5 / 6
    assert rows["reward shaping ν=10"]["helpfulness_win_rate"] == 0.0
    assert rows["Safe RLHF"]["harmful_ratio"] == 0.5
    assert rows["Safe RLHF"]["helpfulness_vs_safe_rlhf"] == "baseline"
    assert rows["reward shaping ν=0.01"]["helpfulness_vs_safe_rlhf"] == "better"
    assert rows["reward shaping ν=0.01"]["harmful_ratio_vs_safe_rlhf"] == "worse"

    out = tmp_path / "out"
    markdown = (out / "summary.md").read_text()
    assert markdown == result["markdown"]
    assert verdict in markdown and "![trade-off](tradeoff.png)" in markdown
    assert "noise-free oracle" in markdown
    assert (
        "| reward shaping ν=1 | reward shaping | 0.000 | 2.333 | 2.583 | -1.167 | 1.000 | 0.917 |"
        in markdown
    )
    assert "better (+1.083 ± 0.083)" in markdown
    saved = json.loads((out / "summary.json").read_text())
    assert saved["verdict"] == verdict and saved["baseline"] == "Safe RLHF"
    assert saved["rows"][3]["harmlessness_win_rate"] == 5.5 / 6
    with (out / "summary.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [row["label"] for row in table] == list(rows)
    assert float(table[1]["helpfulness_win_rate"]) == pytest.approx(4 / 6)
    figure = (out / "tradeoff.png").read_bytes()
    assert figure[:8] == PNG_MAGIC and len(figure) > 5_000


def test_summary_without_a_dominating_run(sweep, tmp_path):
    # ν=1 answers exactly as Safe RLHF: within noise on both axes, so it matches but does not beat.
    (sweep["sweep"] / "2").rename(tmp_path / "dominating")
    write_run(sweep["sweep"] / "2", SAFE_RLHF, **fixed(1.0))
    verdict = summarize([sweep["sweep"]], sweep["sft"], tmp_path / "out")["verdict"]
    assert verdict.startswith("No reward-shaping run beats Safe RLHF (Safe RLHF) on both axes; ")
    assert "reward shaping ν=1 matches it" in verdict
    # Without ν=1, every reward-shaping run is worse on one axis.
    (sweep["sweep"] / "2").rename(tmp_path / "matching")
    verdict = summarize([sweep["sweep"]], sweep["sft"], tmp_path / "out")["verdict"]
    assert verdict.startswith("No reward-shaping run beats or matches Safe RLHF (Safe RLHF): ")
    assert "reward shaping ν=0.01, reward shaping ν=10 are each worse" in verdict


def test_verdict_without_safe_rlhf_or_reward_shaping():
    rows = [{"label": "reward only", "method": "reward only"}]
    assert "no Safe RLHF run" in verdict_sentence(rows, None)
    assert "no reward-shaping (fixed ν) run" in verdict_sentence(rows, "Safe RLHF")


def test_summary_without_reference_has_one_panel_and_no_win_rates(sweep, tmp_path):
    with_reference = summarize([sweep["sweep"]], sweep["sft"], tmp_path / "with")
    result = summarize([sweep["sweep"] / "1", sweep["sweep"] / "10"], None, tmp_path / "out")
    assert result["reference"] is None and "no Safe RLHF run" in result["verdict"]
    assert [row["label"] for row in result["rows"]] == [
        "reward shaping ν=0.01",
        "reward shaping ν=10",
    ]
    assert "helpfulness_win_rate" not in result["rows"][0]
    assert "win rate" not in (tmp_path / "out" / "summary.md").read_text()
    # One panel instead of two: a narrower figure.
    from matplotlib.image import imread

    one = imread(tmp_path / "out" / "tradeoff.png").shape[1]
    two = imread(tmp_path / "with" / "tradeoff.png").shape[1]
    assert one < 0.6 * two
    assert len(with_reference["rows"]) == 5


def test_reference_inside_the_swept_folder_is_listed_once(sweep, tmp_path):
    result = summarize([sweep["root"]], sweep["sft"], tmp_path / "out")
    labels = [row["label"] for row in result["rows"]]
    assert labels.count("SFT") == 1 and labels[0] == "SFT"
    assert len(labels) == 5


def test_methods_name_a_critic_free_estimator_and_keep_gae_the_papers():
    learned = {"stage": {"name": "ppo_lag"}, "lambda_schedule": {"_target_": "x.LearnedLambda"}}
    pid = {**learned, "lambda_schedule": {"_target_": "x.PIDLambda"}}
    assert method_of({**learned, "advantage": {"_target_": "x.GAEAdvantage"}}) == "Safe RLHF"
    assert method_of(learned) == "Safe RLHF"  # runs from before the advantage group
    grpo = {"_target_": "x.GRPOAdvantage", "scale_by_std": True}
    assert method_of({**learned, "advantage": grpo}) == "Safe RLHF (GRPO)"
    dr_grpo = {**grpo, "scale_by_std": False}
    assert method_of({**pid, "advantage": dr_grpo}) == "PID λ (Dr. GRPO)"
    assert method_of({**pid, "advantage": {"_target_": "x.RLOOAdvantage"}}) == "PID λ (RLOO)"
