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
    parser.add_argument(
        "--wandb-group",
        default=None,
        metavar="GROUP",
        help="also log the summary as a W&B table, in a run of its own (job type summary) in this "
        "group: the sweep's runs' group, <experiment>-<sweep_name>; offline unless a W&B API key "
        "is configured, files under the output folder",
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
    if args.wandb_group:
        log_summary_table(result, args.wandb_group, output)
    sys.stdout.write(result["markdown"])
    sys.stdout.write(
        f"\nwritten to {output}/ (summary.md, summary.csv, summary.json, tradeoff.png)\n"
    )
    return 0


def log_summary_table(result: dict, group: str, output: Path) -> None:
    """The summary's rows as the W&B table ``sweep_summary`` of a run ``<group>-summary``, its
    verdict in the run's summary. The sweep's own runs are finished: this is a run of its own."""
    import wandb

    from .loggers import choose_wandb_offline, table_cell

    offline, _ = choose_wandb_offline(None)
    output.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project="safe-rlhf-lightning",
        name=f"{group}-summary",
        group=group,
        job_type="summary",
        tags=["summary"],
        dir=str(output),
        mode="offline" if offline else "online",
    )
    rows = result["rows"]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = wandb.Table(
        columns=columns, data=[[table_cell(r.get(c)) for c in columns] for r in rows]
    )
    run.log({"sweep_summary": table})
    run.summary["verdict"] = result["verdict"]
    run.finish()


if __name__ == "__main__":
    sys.exit(main())
