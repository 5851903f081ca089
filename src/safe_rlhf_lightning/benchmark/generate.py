"""Writing the whole benchmark to a folder, deterministically from a seed, in a few seconds.

Files (UTF-8 JSONL, one object per line):
- ``sft_{train,test}.jsonl``: prompt, response, prompt_kind, topic, category
- ``preference_{train,test}.jsonl``: the PKU-SafeRLHF schema (prompt, response_0, response_1,
  better_response_id, safer_response_id, is_response_0_safe, is_response_1_safe) plus severity,
  harm categories, prompt kind/topic/category and the noise-free oracle scores
- ``prompts_{train,test}.jsonl``: prompt, prompt_kind, topic, category
- ``manifest.json``: parameters, counts, measured annotator agreement and cost reference numbers;
  written last, so its presence means the folder is complete.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from statistics import fmean
from typing import Any

from safe_rlhf_lightning.benchmark.annotators import (
    DEFAULT_BETTER_TEMPERATURE,
    DEFAULT_SAFER_TEMPERATURE,
    DEFAULT_SAFETY_LABEL_ERROR_RATE,
    SimulatedAnnotator,
    label_agreement,
)
from safe_rlhf_lightning.benchmark.costs import cost_reference
from safe_rlhf_lightning.benchmark.oracle import Oracle
from safe_rlhf_lightning.benchmark.prompts import WorldPrompt, all_prompts, split_prompts
from safe_rlhf_lightning.benchmark.responses import (
    COMPLIANCE_OPENER,
    sample_demonstration,
    sample_preference_response,
    sentence,
)
from safe_rlhf_lightning.benchmark.world import (
    FILLERS,
    REDIRECT_CONNECTORS,
    REFUSALS,
    STEP_CONNECTORS,
    all_topics,
)
from safe_rlhf_lightning.files import write_jsonl_atomic, write_text_atomic

logger = logging.getLogger(__name__)

SFT_TRAIN_FILE = "sft_train.jsonl"
SFT_TEST_FILE = "sft_test.jsonl"
PREFERENCE_TRAIN_FILE = "preference_train.jsonl"
PREFERENCE_TEST_FILE = "preference_test.jsonl"
PROMPTS_TRAIN_FILE = "prompts_train.jsonl"
PROMPTS_TEST_FILE = "prompts_test.jsonl"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
_DIGITS = 4  # rounding of the oracle floats written to files
_MAX_REDRAWS = 5


def generate_benchmark(
    output_dir: str | Path,
    seed: int = 0,
    *,
    num_sft_demos_per_prompt: int = 3,
    num_test_sft_demos_per_prompt: int = 1,
    num_preference_pairs_per_prompt: int = 10,
    num_test_preference_pairs_per_prompt: int = 4,
    test_fraction: float = 0.2,
    better_temperature: float = DEFAULT_BETTER_TEMPERATURE,
    safer_temperature: float = DEFAULT_SAFER_TEMPERATURE,
    safety_label_error_rate: float = DEFAULT_SAFETY_LABEL_ERROR_RATE,
) -> dict[str, Any]:
    """Write every benchmark file into ``output_dir`` and return the manifest.

    Args:
        output_dir: folder to write into (created if missing; existing files are replaced).
        seed: everything written is a function of this seed (and the parameters).
        num_sft_demos_per_prompt: demonstrations per train prompt (test: ``num_test_...``).
        num_preference_pairs_per_prompt: labelled pairs per train prompt (test: ``num_test_...``).
            With 3 pairs a prompt (3,420 pairs) the tiny reward model memorised the label noise
            within two epochs (held-out accuracy 0.59 against a ceiling of 0.72); 10 give it
            11,400 pairs. 4 test pairs a prompt (1,200) keep the accuracies' standard error
            near 1.3 points.
        test_fraction: share of each topic's (goal, template) combinations held out for test.
        better_temperature, safer_temperature: Bradley–Terry noise of the simulated annotators.
        safety_label_error_rate: chance that a safe/unsafe meta-label is flipped.
    """
    parameters = {
        "num_sft_demos_per_prompt": num_sft_demos_per_prompt,
        "num_test_sft_demos_per_prompt": num_test_sft_demos_per_prompt,
        "num_preference_pairs_per_prompt": num_preference_pairs_per_prompt,
        "num_test_preference_pairs_per_prompt": num_test_preference_pairs_per_prompt,
        "test_fraction": test_fraction,
        "better_temperature": better_temperature,
        "safer_temperature": safer_temperature,
        "safety_label_error_rate": safety_label_error_rate,
    }
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    oracle = Oracle()
    annotator = SimulatedAnnotator(
        oracle,
        seed=f"annotator-{seed}",
        better_temperature=better_temperature,
        safer_temperature=safer_temperature,
        safety_label_error_rate=safety_label_error_rate,
    )
    train, test = split_prompts(seed, test_fraction)
    sft_rng = random.Random(f"sft-{seed}")
    pair_rng = random.Random(f"preference-{seed}")
    sft_train = _demonstrations(train, num_sft_demos_per_prompt, sft_rng)
    sft_test = _demonstrations(test, num_test_sft_demos_per_prompt, sft_rng)
    pref_train = _preference_rows(train, num_preference_pairs_per_prompt, pair_rng, annotator)
    pref_test = _preference_rows(test, num_test_preference_pairs_per_prompt, pair_rng, annotator)

    files: dict[str, list[dict[str, Any]]] = {
        PROMPTS_TRAIN_FILE: [p.record() for p in train],
        PROMPTS_TEST_FILE: [p.record() for p in test],
        SFT_TRAIN_FILE: [_sft_record(p, r) for p, r in sft_train],
        SFT_TEST_FILE: [_sft_record(p, r) for p, r in sft_test],
        PREFERENCE_TRAIN_FILE: pref_train,
        PREFERENCE_TEST_FILE: pref_test,
    }
    for name, rows in files.items():
        write_jsonl_atomic(output / name, rows)

    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "parameters": parameters,
        "counts": {name: len(rows) for name, rows in files.items()},
        "prompt_kinds": {name: _kind_counts(rows) for name, rows in files.items()},
        "annotator_agreement": label_agreement(pref_train + pref_test),
        "sft": _demonstration_stats(sft_train, oracle),
        "cost": cost_reference(train, [p for p, _ in sft_train], [r for _, r in sft_train], oracle),
    }
    write_text_atomic(output / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    logger.info("wrote the synthetic benchmark to %s: %s", output, json.dumps(manifest["counts"]))
    return manifest


def benchmark_corpus() -> list[str]:
    """Every piece of text the world can produce, for training a tokenizer offline.

    All prompts, every phrase as a sentence and after each connector, the refusals and fillers.
    """
    corpus = [p.prompt for p in all_prompts()]
    connectors = STEP_CONNECTORS + REDIRECT_CONNECTORS
    for topic in all_topics():
        for phrase in topic.help + topic.risky + topic.redirect:
            corpus.append(sentence(phrase))
            corpus.extend(f"{c}, {phrase}." for c in connectors)
    corpus.extend(REFUSALS)
    corpus.extend(FILLERS)
    corpus.append(COMPLIANCE_OPENER)
    return corpus


def _demonstrations(
    prompts: Sequence[WorldPrompt], per_prompt: int, rng: random.Random
) -> list[tuple[WorldPrompt, str]]:
    return [(p, sample_demonstration(p.topic, rng)) for p in prompts for _ in range(per_prompt)]


def _sft_record(prompt: WorldPrompt, response: str) -> dict[str, Any]:
    return {"prompt": prompt.prompt, "response": response} | _prompt_columns(prompt)


def _prompt_columns(prompt: WorldPrompt) -> dict[str, str]:
    return {
        "prompt_kind": prompt.topic.kind,
        "topic": prompt.topic.name,
        "category": prompt.topic.category,
    }


def _preference_rows(
    prompts: Sequence[WorldPrompt],
    per_prompt: int,
    rng: random.Random,
    annotator: SimulatedAnnotator,
) -> list[dict[str, Any]]:
    topics = all_topics()
    rows = []
    for prompt in prompts:
        for _ in range(per_prompt):
            response_0 = sample_preference_response(prompt.topic, rng, topics)
            response_1 = sample_preference_response(prompt.topic, rng, topics)
            # Identical responses teach nothing; redraw a few times, then accept.
            for _ in range(_MAX_REDRAWS):
                if response_1 != response_0:
                    break
                response_1 = sample_preference_response(prompt.topic, rng, topics)
            rows.append(_preference_row(prompt, response_0, response_1, annotator))
    return rows


def _preference_row(
    prompt: WorldPrompt, response_0: str, response_1: str, annotator: SimulatedAnnotator
) -> dict[str, Any]:
    return labelled_pair_row(prompt.prompt, response_0, response_1, annotator)


def labelled_pair_row(
    prompt: str, response_0: str, response_1: str, annotator: SimulatedAnnotator
) -> dict[str, Any]:
    """A PKU-SafeRLHF row for one pair, labelled by ``annotator``, with the prompt's kind, topic
    and category and the noise-free oracle scores of both responses (any prompt and responses:
    the benchmark's own pairs or a policy's samples)."""
    oracle = annotator.oracle
    info = oracle.prompt_info(prompt)
    score_0 = oracle.score_with_info(info, response_0)
    score_1 = oracle.score_with_info(info, response_1)
    labels = annotator.label_scores(score_0, score_1)
    return {
        "prompt": prompt,
        "response_0": response_0,
        "response_1": response_1,
        "better_response_id": labels.better_response_id,
        "safer_response_id": labels.safer_response_id,
        "is_response_0_safe": labels.is_response_0_safe,
        "is_response_1_safe": labels.is_response_1_safe,
        "response_0_severity_level": score_0.severity,
        "response_1_severity_level": score_1.severity,
        "response_0_harm_category": list(score_0.categories),
        "response_1_harm_category": list(score_1.categories),
        "prompt_kind": info.kind,
        "topic": info.topic,
        "category": info.category,
        "oracle_response_0_helpfulness": round(score_0.helpfulness, _DIGITS),
        "oracle_response_1_helpfulness": round(score_1.helpfulness, _DIGITS),
        "oracle_response_0_cost": round(score_0.cost, _DIGITS),
        "oracle_response_1_cost": round(score_1.cost, _DIGITS),
    }


def _kind_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(row["prompt_kind"] for row in rows).items()))


def _demonstration_stats(
    demos: Sequence[tuple[WorldPrompt, str]], oracle: Oracle
) -> dict[str, float]:
    scores = [(p.topic.kind, oracle.score(p.prompt, r)) for p, r in demos]
    harmful = [s for kind, s in scores if kind == "harmful"]
    return {
        "harmful_share_on_harmful_prompts": fmean(not s.is_safe for s in harmful),
        "harmful_share_overall": fmean(not s.is_safe for _, s in scores),
        "mean_cost": fmean(s.cost for _, s in scores),
        "mean_helpfulness": fmean(s.helpfulness for _, s in scores),
        "max_words": float(max(s.num_words for _, s in scores)),
    }
