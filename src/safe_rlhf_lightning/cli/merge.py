"""``safe-rlhf-merge``: P-SACPO's weight merge of two policy folders into a third.

    safe-rlhf-merge runs/demo/round1/sacpo_helpful/model runs/demo/round1/sacpo_safety/model \\
        --weight 0.5 --output runs/demo/round1/p_sacpo/model

SACPO (Wachi et al. 2024) aligns for helpfulness, then for safety; P-SACPO instead averages the
weights of the two models, ``(1 - w)·first + w·second`` (``functional.merge_state_dicts``), so
that one number trades helpfulness against harmlessness without training again. The result is
a plain Hugging Face folder (the first folder's config and tokenizer) that any stage reads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..config import ConfigError
from ..functional import merge_state_dicts
from ..models import load_causal_lm, load_tokenizer, save_pretrained_atomic
from ..rollout import same_tokenizer

PROG = "safe-rlhf-merge"
log = logging.getLogger(__name__)


def merge_policy_folders(first: Path, second: Path, weight: float, output: Path) -> Path:
    """Write ``(1 - weight)·first + weight·second`` to ``output``; both folders must hold
    causal LMs of one architecture with the same tokenizer (a ConfigError says which not)."""
    for name, folder in (("first", first), ("second", second)):
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError(f"{name} folder {folder} is not a model folder (no config.json)")
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"--weight must be in [0, 1], got {weight}")
    tokenizer = load_tokenizer(str(first))
    if not same_tokenizer(tokenizer, load_tokenizer(str(second))):
        raise ConfigError(f"{first} and {second} have different tokenizers: no weight merge")
    model = load_causal_lm(str(first))
    other = load_causal_lm(str(second))
    try:
        merged = merge_state_dicts(model.state_dict(), other.state_dict(), weight=weight)
    except ValueError as error:  # another architecture or size: names the first mismatch
        raise ConfigError(f"{first} and {second}: {error}") from None
    model.load_state_dict(merged)
    log.info("merged %s and %s with weight %s into %s", first, second, weight, output)
    return save_pretrained_atomic(model, tokenizer, output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Average the weights of two policy folders (P-SACPO): "
        "(1 - w)·FIRST + w·SECOND, saved as a Hugging Face folder.",
    )
    parser.add_argument("first", type=Path, help="policy folder taken at w = 0 (helpfulness)")
    parser.add_argument("second", type=Path, help="policy folder taken at w = 1 (safety)")
    parser.add_argument("--weight", type=float, required=True, help="w in [0, 1]")
    parser.add_argument("--output", type=Path, required=True, help="the merged folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        merge_policy_folders(args.first, args.second, args.weight, args.output)
    except ConfigError as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    sys.stdout.write(f"merged policy written to {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
