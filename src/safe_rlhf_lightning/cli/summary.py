"""``safe-rlhf-summary``: gather a sweep's PPO runs into a table and the trade-off plot.

    safe-rlhf-summary runs/demo/multirun/2025-01-01_12-00-00 --reference runs/demo/round1/sft
    safe-rlhf-summary runs/demo/round1/ppo_lag runs/demo/round1/ppo_nu1 --output summaries/nu

Writes ``summary.md``, ``summary.csv``, ``summary.json`` and ``tradeoff.png``
(``evaluation.sweep_summary``) and prints the Markdown. No model is loaded: the runs' oracle
scores are read from their folders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.sweep_summary import SummaryError, is_run_folder, summarize

PROG = "safe-rlhf-summary"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise PPO runs (ppo_lag stage folders, or sweep folders holding them): "
        "oracle metrics, win rates against the SFT reference, paired verdicts against Safe RLHF "
        "and whether reward shaping (fixed ν) beats it, as Markdown, CSV, JSON and a plot.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_SWEEP_DIR",
        type=Path,
        help="a run folder (results.json, samples.jsonl, config.yaml) or a folder holding some",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        metavar="SFT_RUN_DIR",
        help="the SFT run the win rates are measured against (without it: no win rates)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the summary (default: the first path if it is a sweep folder, "
        "else ./summary)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = args.output
    if output is None:
        first = args.paths[0]
        output = first if first.is_dir() and not is_run_folder(first) else Path("summary")
    try:
        result = summarize(args.paths, args.reference, output)
    except SummaryError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    sys.stdout.write(result["markdown"])
    sys.stdout.write(
        f"\nwritten to {output}/ (summary.md, summary.csv, summary.json, tradeoff.png)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
