"""Where a reward model disagrees with the embedded benchmark's noise-free oracle.

Usage: python experiments/reward_errors.py RUN_DIR/scores.jsonl [--better-temperature T]
(the ``scores.jsonl`` a reward stage writes on the embedded benchmark; T: the annotators'
Bradley–Terry temperature, the benchmark manifest's ``better_temperature``). Prints the expected
accuracy of the model and of the oracle (the ceiling) against the annotators' noisy labels, and
which kinds of pairs cost the model its accuracy (see ``reward_error_breakdown``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safe_rlhf_lightning.benchmark import reward_error_breakdown
from safe_rlhf_lightning.benchmark.annotators import DEFAULT_BETTER_TEMPERATURE


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path)
    parser.add_argument("--better-temperature", type=float, default=DEFAULT_BETTER_TEMPERATURE)
    args = parser.parse_args(argv)
    with args.scores.open() as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    report = reward_error_breakdown(rows, args.better_temperature)
    lines = [
        f"{report['num_pairs']} pairs; expected accuracy against the noisy labels: model "
        f"{report['expected_accuracy']:.3f}, oracle (ceiling) {report['expected_ceiling']:.3f}",
        "",
        "| pairs with | pairs | ordered against the oracle | expected accuracy lost |",
        "|---|---:|---:|---:|",
    ]
    for name, group in report["groups"].items():
        lines.append(
            f"| {name} | {group['pairs']} | {group['against_oracle']:.2f} "
            f"| {group['expected_accuracy_lost']:.4f} |"
        )
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
