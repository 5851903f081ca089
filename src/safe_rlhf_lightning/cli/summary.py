"""``safe-rlhf-summary``: gather a sweep's PPO runs into a table and the trade-off plot, or
check an evaluation folder against the headline (safer and more helpful than SFT).

    safe-rlhf-summary runs/demo/multirun/2025-01-01_12-00-00 --reference runs/demo/round1/sft
    safe-rlhf-summary runs/demo/round1/ppo_lag runs/demo/round1/ppo_nu1 --output summaries/nu
    safe-rlhf-summary runs/demo/round1/eval

For run and sweep folders it writes ``summary.md``, ``summary.csv``, ``summary.json`` and
``tradeoff.png`` (``evaluation.sweep_summary``); for eval folders (the eval stage's
``results.json`` and ``samples_<policy>.jsonl``) ``verdict.md`` and ``verdict.json``
(``evaluation.verdict``: every policy against SFT, paired by prompt, per prompt kind, and a
verdict line per criterion). It prints the Markdown. No model is loaded: the oracle scores are
read from the folders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.sweep_summary import SummaryError, is_run_folder, summarize
from ..evaluation.verdict import (
    headline,
    headline_json,
    headline_markdown,
    is_eval_folder,
    read_eval_folder,
)
from ..files import write_json_atomic, write_text_atomic

PROG = "safe-rlhf-summary"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Summarise PPO runs (ppo_lag stage folders, or sweep folders holding them): "
        "oracle metrics, win rates against the SFT reference, paired verdicts against Safe RLHF "
        "and whether reward shaping (fixed ν) beats it, as Markdown, CSV, JSON and a plot. "
        "Given eval stage folders instead: every policy against SFT, paired by prompt, per "
        "prompt kind, with a verdict line per criterion of the headline (safer and more "
        "helpful than SFT).",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_OR_SWEEP_DIR",
        type=Path,
        help="a run folder (results.json, samples.jsonl, config.yaml), a folder holding some, "
        "or an eval stage folder (results.json, samples_<policy>.jsonl)",
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
        "else ./summary; for an eval folder, the folder itself)",
    )
    parser.add_argument(
        "--wandb-group",
        default=None,
        metavar="GROUP",
        help="also log the summary as a W&B table, in a run of its own (job type summary) in this "
        "group: the sweep's runs' group, <experiment>-<sweep_name>; offline unless a W&B API key "
        "is configured, files under the output folder",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="eval folders: exit with status 1 when a criterion of the headline fails",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if any(is_eval_folder(path) for path in args.paths):
        return check_eval_folders(args.paths, args.output, args.check)
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


def check_eval_folders(paths: Sequence[Path], output: Path | None, check: bool) -> int:
    """Print and write each eval folder's headline check; exit 1 under ``check`` when one
    does not hold, 2 on a bad path."""
    try:
        if not all(is_eval_folder(path) for path in paths):
            odd = next(path for path in paths if not is_eval_folder(path))
            raise SummaryError(f"{odd}: not an eval folder (give eval folders alone)")
        if output is not None and len(paths) > 1:
            raise SummaryError("--output takes one eval folder at a time")
        results = {path: _headline_of(path) for path in paths}
    except SummaryError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    for path, result in results.items():
        folder = output or path
        markdown = f"# Headline check of {path}\n\n" + headline_markdown(result)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / "verdict.md", markdown)
        write_json_atomic(folder / "verdict.json", headline_json(result))
        sys.stdout.write(markdown + f"\nwritten to {folder}/ (verdict.md, verdict.json)\n")
    return 1 if check and not all(r["holds"] for r in results.values()) else 0


def _headline_of(path: Path) -> dict:
    try:
        found = read_eval_folder(path)
        names = list(found["rows"])
        reference = "sft" if "sft" in names else names[0]
        return headline(found["rows"], found["oracle_elo"], reference, found["reward_only"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SummaryError(f"{path}: {error}") from None


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
