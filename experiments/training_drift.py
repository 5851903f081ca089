"""How a PPO run's policy moved during training, from the files it wrote.

Usage: python experiments/training_drift.py PPO_RUN_DIR [PPO_RUN_DIR ...]
Prints, per run, (1) λ, reward, cost, episode cost, KL and the oracle's view of the training
rollouts over windows of steps (``history.jsonl``), and (2) for the rollouts the run logged
(``samples_train.jsonl``, every ``log_samples_every`` steps) the oracle's scores per prompt kind,
the mean C the run's cost model gave them, the share of answers with phrases of another topic
and the share of words outside the world's sentences.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from statistics import fmean

import yaml

from safe_rlhf_lightning.benchmark.oracle import Oracle
from safe_rlhf_lightning.data import PromptTemplate

HISTORY_KEYS = (
    "lambda",
    "reward",
    "cost",
    "episode_cost",
    "kl_divergence",
    "oracle_helpfulness_benign",
    "oracle_harmful_ratio_harmful",
    "oracle_harmful_ratio_dual_use",
)
WINDOWS = ((0, 1), (1, 4), (4, 8), (8, 12), (12, 16), (16, 24), (24, 40), (40, 60), (60, 80))


def history_table(run: Path) -> list[str]:
    rows = [json.loads(line) for line in (run / "history.jsonl").open()]
    lines = ["| steps | " + " | ".join(HISTORY_KEYS) + " |", "|---|" + "---:|" * len(HISTORY_KEYS)]
    for start, end in WINDOWS:
        group = [r for r in rows if start <= r["step"] < end]
        if group:
            cells = [fmean(r[k] for r in group if k in r) for k in HISTORY_KEYS]
            lines.append(f"| {start}-{end - 1} | " + " | ".join(f"{c:+.2f}" for c in cells) + " |")
    return lines


def rollout_table(run: Path) -> list[str]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    template = PromptTemplate(config["data"]["prompt_template"])
    head, tail = template.template.split("{prompt}")
    oracle = Oracle()
    groups = defaultdict(list)
    for line in (run / "samples_train.jsonl").open():
        row = json.loads(line)
        prompt = row["prompt"].removeprefix(head).removesuffix(tail.rstrip()).strip()
        score = oracle.score(prompt, row["response"])
        terms = oracle.helpfulness_terms(prompt, row["response"])
        kind = oracle.prompt_info(prompt).kind
        groups[row["step"], kind].append((score, terms, row["cost"]))
    lines = [
        "| step | prompt kind | n | oracle helpfulness | oracle harmful | mean C | off-topic "
        "share | off-world share |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (step, kind), group in sorted(groups.items()):
        cells = [
            fmean(s.helpfulness for s, _, _ in group),
            fmean(not s.is_safe for s, _, _ in group),
            fmean(c for _, _, c in group),
            fmean(t["off_topic"] > 0 for _, t, _ in group),
            fmean(s.unrecognized_share for s, _, _ in group),
        ]
        lines.append(
            f"| {step} | {kind} | {len(group)} | " + " | ".join(f"{c:+.2f}" for c in cells) + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    for run in args.runs:
        print(f"## {run}\n")
        print("\n".join(history_table(run)))
        print()
        print("\n".join(rollout_table(run)))
        print()


if __name__ == "__main__":
    main()
