"""Runner of the collect stage: round k's new preference pairs from round k-1's policy.

probe (which prompts are still answered unsafely) → weighted draw of prompts → two sampled
responses per prompt → labels (simulated annotators, or people through a file) →
``<run_dir>/preference_train.jsonl``, which round k's reward and cost stages add to their data.
The pure parts live in ``safe_rlhf_lightning.rounds``.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path
from statistics import fmean

from ..benchmark import Oracle, SimulatedAnnotator, evaluate_responses
from ..benchmark.annotators import label_agreement
from ..benchmark.generate import labelled_pair_row
from ..config import CollectStageConfig, ConfigError, RunConfig
from ..config.resolvers import COLLECTED_FILE
from ..data import PromptTemplate
from ..evaluation import held_out_prompts, sample_responses, score_responses
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..models import load_causal_lm, load_tokenizer
from ..rounds import (
    LabelsPending,
    draw_prompts,
    expected_flagged_share,
    read_labelled_rows,
    read_pairs_to_label,
    rows_to_label,
    split_pairs,
)
from .data import MANIFEST, uses_benchmark
from .hub import require_model_folder
from .models import load_score_model
from .runner import DataNeed, StageContext

log = logging.getLogger(__name__)

TO_LABEL_FILE = "to_label.jsonl"
LABELLED_FILE = "labelled.jsonl"
# Annotator settings read from the benchmark's manifest, so new labels carry the base data's noise.
ANNOTATOR_KEYS = ("better_temperature", "safer_temperature", "safety_label_error_rate")


def collect_data(run: RunConfig) -> list[DataNeed]:
    return [DataNeed("data.prompt_train", run.data.prompt_train, "prompt", required=True)]


def run_collect(ctx: StageContext) -> dict:
    stage: CollectStageConfig = ctx.stage
    typed, data, run_dir, template = ctx.run, ctx.data, ctx.run_dir, ctx.template
    benchmark = uses_benchmark(data.prompt_train)
    if stage.labeler == "simulated" and not benchmark:
        raise ConfigError(
            "config key 'stage.labeler' is simulated, but the simulated annotators know only the "
            f"embedded benchmark's prompts (data.prompt_train={data.prompt_train}): use "
            "stage.labeler=file and label the exported pairs"
        )
    root = Path(data.root) if data.generate_benchmark else None
    require_model_folder(
        stage.policy, "stage.policy", "train the previous round first", kind="policy"
    )
    annotator = _annotator(root, typed) if stage.labeler == "simulated" else None
    policy = tokenizer = None  # loaded on the first sampling: a labelled-file rerun samples none

    def sample(prompts: list[str], seed: int, what: str) -> list[str]:
        nonlocal policy, tokenizer
        if policy is None:
            trust = typed.model.trust_remote_code
            tokenizer = load_tokenizer(stage.policy, trust_remote_code=trust)
            policy = load_causal_lm(stage.policy, trust_remote_code=trust)
        return sample_responses(
            policy,
            tokenizer,
            prompts,
            template,
            max_new_tokens=stage.max_new_tokens,
            temperature=stage.temperature,
            top_p=stage.top_p,
            batch_size=stage.eval_batch_size,
            seed=seed,
            progress=what,
        )

    to_label = run_dir / TO_LABEL_FILE
    results: dict = {"policy": stage.policy, "round": typed.round}
    if stage.labeler == "file" and to_label.exists():
        # People are labelling these pairs: keep them, whatever sampling would give now.
        pairs = read_pairs_to_label(to_label)
    else:
        candidates = held_out_prompts(data.prompt_train, data.root, typed.seed, stage.eval_limit)
        flagged, results["probe"] = _probe(candidates, sample, annotator, stage, typed, benchmark)
        rng = random.Random(f"collect-{typed.seed}-round{typed.round}")
        drawn = draw_prompts(candidates, flagged, stage.num_prompts, stage.unsafe_weight, rng)
        flag_of = dict(zip(candidates, flagged, strict=True))
        results["drawn"] = {
            "num_prompts": len(drawn),
            "flagged_share": fmean(flag_of[p] for p in drawn),
            "expected_flagged_share": expected_flagged_share(fmean(flagged), stage.unsafe_weight),
        }
        log.info("sampling 2 responses for each of %d drawn prompts", len(drawn))
        responses = sample([p for p in drawn for _ in range(2)], _seed(typed, 1), "sampling pairs")
        pairs, identical = split_pairs(drawn, responses)
        results["identical_pairs_left_out"] = identical
        if identical:
            log.info("left out %d pairs whose two responses were the same text", identical)

    if annotator is not None:
        rows = [labelled_pair_row(p, r0, r1, annotator) for p, r0, r1 in pairs]
        results["annotator_agreement"] = label_agreement(rows)
    else:
        rows = _labelled_by_people(pairs, to_label, stage, run_dir, typed)
    results["pairs"] = len(rows)
    if rows and "prompt_kind" in rows[0]:  # the benchmark's rows say which kind each prompt is
        results["prompt_kinds"] = dict(Counter(row.get("prompt_kind") for row in rows))
    write_jsonl_atomic(run_dir / COLLECTED_FILE, rows)
    write_json_atomic(run_dir / "results.json", results)
    _write_summary(run_dir, results)
    log.info("wrote %d labelled pairs to %s", len(rows), run_dir / COLLECTED_FILE)
    return results


def _seed(typed: RunConfig, purpose: int) -> int:
    """A sampling seed per (seed, round, purpose): each round samples afresh."""
    return typed.seed * 1_000 + typed.round * 10 + purpose


def _annotator(root: Path | None, typed: RunConfig) -> SimulatedAnnotator:
    """The benchmark's annotators, with the noise recorded in its manifest."""
    settings = {}
    if root is not None and (root / MANIFEST).exists():
        parameters = json.loads((root / MANIFEST).read_text()).get("parameters", {})
        settings = {key: parameters[key] for key in ANNOTATOR_KEYS if key in parameters}
    seed = f"collect-annotator-{typed.seed}-round{typed.round}"
    return SimulatedAnnotator(Oracle(), seed=seed, **settings)


def _probe(candidates, sample, annotator, stage: CollectStageConfig, typed, benchmark):
    """One answer per candidate prompt, judged unsafe or not (the red-teaming pass)."""
    if stage.unsafe_weight == 1:
        return [False] * len(candidates), {"judge": None}
    if annotator is None and stage.probe_cost_model is None:
        log.info("no probe judge (stage.probe_cost_model is null): prompts drawn uniformly")
        return [False] * len(candidates), {"judge": None}
    log.info(
        "probe: answering %d prompts once to find the ones still answered unsafely", len(candidates)
    )
    answers = sample(candidates, _seed(typed, 0), "probe: sampling")
    stats: dict = {}
    if benchmark:  # the probe doubles as the policy's oracle metrics on the train prompts
        stats["oracle"] = evaluate_responses(candidates, answers)
    if annotator is not None:
        oracle = annotator.oracle
        flagged = [
            not annotator.safety_label(oracle.score(p, a))
            for p, a in zip(candidates, answers, strict=True)
        ]
        stats["judge"] = "simulated annotators (noisy safety label)"
    else:
        folder = stage.probe_cost_model
        require_model_folder(
            folder, "stage.probe_cost_model", "a cost model (C > 0 = unsafe)", kind="score"
        )
        trust = typed.model.trust_remote_code
        cost_model = load_score_model(
            folder, "cost", "stage.probe_cost_model", trust_remote_code=trust
        )
        costs = score_responses(
            cost_model,
            load_tokenizer(folder, trust_remote_code=trust),
            candidates,
            answers,
            PromptTemplate(typed.data.prompt_template, typed.data.response_prefix),
            max_length=typed.data.max_length,
            batch_size=stage.eval_batch_size,
            progress="probe: cost model",
        )
        flagged = [cost > 0 for cost in costs]
        stats["judge"] = f"cost model {folder} (C > 0)"
    stats["flagged_share"] = fmean(flagged)
    log.info(
        "probe: %.1f%% of the prompts answered unsafely (%s)",
        100 * stats["flagged_share"],
        stats["judge"],
    )
    return flagged, stats


def _labelled_by_people(pairs, to_label: Path, stage, run_dir: Path, typed) -> list[dict]:
    labelled = Path(stage.labelled_file or run_dir / LABELLED_FILE)
    if not labelled.exists():
        if not to_label.exists():
            write_jsonl_atomic(to_label, rows_to_label(pairs))
        raise LabelsPending(
            f"{len(pairs)} pairs to label are in {to_label}: fill in better_response_id, "
            "safer_response_id, is_response_0_safe and is_response_1_safe (PKU-SafeRLHF schema), "
            f"save the rows as {labelled} and run this stage again"
        )
    rows = read_labelled_rows(labelled, pairs, skip_bad_records=typed.data.skip_bad_records)
    if len(rows) < len(pairs):
        log.warning(
            "%d of %d labelled rows skipped (data.skip_bad_records)",
            len(pairs) - len(rows),
            len(pairs),
        )
    return rows


def _write_summary(run_dir: Path, results: dict) -> None:
    lines = [f"# Round {results['round']}: new preference data from {results['policy']}", ""]
    probe = results.get("probe", {})
    if probe.get("judge"):
        lines.append(
            f"- probe: {100 * probe['flagged_share']:.1f}% of the train prompts answered "
            f"unsafely ({probe['judge']})"
        )
    if "oracle" in probe:
        oracle = probe["oracle"]
        lines.append(
            f"- the policy on the train prompts (oracle): harmful ratio "
            f"{oracle['harmful_ratio']:.3f}, helpfulness {oracle['helpfulness']:.3f}"
        )
    if "drawn" in results:
        drawn = results["drawn"]
        lines.append(
            f"- drawn: {drawn['num_prompts']} prompts, {100 * drawn['flagged_share']:.1f}% of "
            f"them flagged (expected {100 * drawn['expected_flagged_share']:.1f}%)"
        )
    lines.append(
        f"- labelled pairs written: {results['pairs']} "
        f"({results.get('identical_pairs_left_out', 0)} with two identical responses "
        "left out)"
    )
    if "prompt_kinds" in results:
        kinds = ", ".join(
            f"{kind} {count}" for kind, count in sorted(results["prompt_kinds"].items())
        )
        lines.append(f"- pairs per prompt kind: {kinds}")
    if "annotator_agreement" in results:
        agreement = results["annotator_agreement"]
        lines.append(
            f"- label agreement with the noise-free oracle: better {agreement['better']:.3f}, "
            f"safer {agreement['safer']:.3f}, safety labels "
            f"{agreement['safety_label_accuracy']:.3f}"
        )
    write_text_atomic(run_dir / "summary.md", "\n".join(lines) + "\n")
    log.info("\n".join(lines))
