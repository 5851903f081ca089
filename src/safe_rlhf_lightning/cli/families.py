"""The families report of an eval run: ``python -m safe_rlhf_lightning.cli.families``.

    python -m safe_rlhf_lightning.cli.families runs/demo/round1/families \\
        sft=sft safe_rlhf=reward,cost,ppo_lag sacpo=sacpo_helpful,sacpo_safety \\
        p_sacpo=sacpo_helpful,sacpo_safety cdpo=reward,cost,cdpo

Reads the eval stage's ``samples_<policy>.jsonl`` in EVAL_DIR (every named policy must be one of
its ``stage.policies``) and the ``train.log`` of the stage folders next to it; writes
``families.md`` and ``families.json`` there (``evaluation.families``). ``make compare-families``
runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.families import FamiliesError, Family, write_families_report

PROG = "safe-rlhf-families"


def parse_family(text: str) -> Family:
    name, sep, stages = text.partition("=")
    if not sep or not name or not stages:
        raise argparse.ArgumentTypeError(f"expected POLICY=STAGE[,STAGE...], got {text!r}")
    return Family(name, tuple(s for s in stages.split(",") if s))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Harmful ratio and helpfulness per prompt kind, paired differences against "
        "baselines, and wall time, for the policies of one eval run.",
    )
    parser.add_argument("eval_dir", type=Path, help="the eval stage's run folder")
    parser.add_argument(
        "families",
        nargs="+",
        type=parse_family,
        help="POLICY=STAGE[,STAGE...]: a policy of the eval and its stage folders (siblings of "
        "EVAL_DIR) whose wall time it took",
    )
    parser.add_argument(
        "--baselines",
        nargs="+",
        default=["sft", "safe_rlhf"],
        help="policies every other is compared with, prompt by prompt (default: sft safe_rlhf)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = write_families_report(args.eval_dir, args.families, args.baselines)
    except FamiliesError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    sys.stdout.write(f"families report written to {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
