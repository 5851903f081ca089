"""Compare PPO runs (e.g. one per λ schedule) side by side: one PNG of their curves and a
Markdown table of the oracle metrics and of how much λ and the harmful ratio oscillate.

Usage: python experiments/compare_schedules.py OUT_DIR NAME=RUN_DIR [NAME=RUN_DIR ...]
(each RUN_DIR a finished ppo_lag run: history.jsonl, results.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safe_rlhf_lightning.evaluation import plot_training_curves, second_half_oscillation

ROWS = (
    ("harmful_ratio_harmful", "oracle harmful ratio, harmful prompts (held-out)"),
    ("harmful_ratio_dual_use", "oracle harmful ratio, dual-use prompts (held-out)"),
    ("helpfulness_benign", "oracle helpfulness, benign prompts (held-out)"),
    ("cost", "oracle mean cost (held-out)"),
)
SPREAD = ("lambda", "oracle_harmful_ratio_harmful", "episode_cost")


def main(out_dir: str, *runs: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    histories, results = {}, {}
    for spec in runs:
        name, _, folder = spec.partition("=")
        run = Path(folder)
        histories[name] = [json.loads(line) for line in (run / "history.jsonl").open()]
        results[name] = json.loads((run / "results.json").read_text())
    first = next(iter(results.values()))
    plot_training_curves(histories, out / "schedules.png", first.get("cost_limit"))
    names = list(results)
    lines = ["| metric | SFT | " + " | ".join(names) + " |", "|---|" + "---:|" * (len(names) + 1)]
    for key, label in ROWS:
        cells = [f"{results[n].get('test', {}).get(key, float('nan')):.3f}" for n in names]
        lines.append(
            f"| {label} | {first.get('init', {}).get(key, float('nan')):.3f} | "
            + " | ".join(cells)
            + " |"
        )
    for key in ("final_episode_cost", "final_lambda", "final_reward", "seconds_per_step"):
        cells = [f"{results[n]['train'].get(key, float('nan')):.3f}" for n in names]
        lines.append(f"| {key} (training) | – | " + " | ".join(cells) + " |")
    for key in SPREAD:
        for stat in ("std", "range"):
            cells = [
                f"{second_half_oscillation(histories[n], key).get(stat, float('nan')):.3f}"
                for n in names
            ]
            lines.append(f"| {key}, 2nd-half {stat} | – | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n\n![curves](schedules.png)\n"
    (out / "schedules.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main(*sys.argv[1:])
