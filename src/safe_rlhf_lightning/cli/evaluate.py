"""Runner of the evaluation stage: sample every policy on the same held-out prompts, score the
responses (oracle on the embedded benchmark; R and C on any data), compare the policies in
arenas and by Elo, and write plots, ``report.md`` and ``results.json``."""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from statistics import fmean

from ..benchmark import per_response_scores
from ..benchmark.evaluate import evaluate_responses
from ..config import ConfigError, EvalStageConfig, RunConfig
from ..evaluation import (
    MODEL_BASED,
    arena_summary,
    arena_table_markdown,
    elo_ratings,
    export_rater_pairs,
    harm_category_rows,
    headline,
    headline_markdown,
    held_out_prompts,
    oracle_table,
    pairwise_matches,
    plot_policy_plane,
    plot_score_distributions,
    plot_training_curves,
    read_rater_judgements,
    reward_only_policies,
    sample_policy,
    score_responses,
    write_arena_csv,
)
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic
from ..models import load_causal_lm, load_tokenizer
from .data import uses_benchmark
from .hub import require_model_folder
from .loggers import build_loggers, report_results
from .models import load_score_model
from .runner import DataNeed, StageContext

log = logging.getLogger(__name__)

JUDGES = ("reward", "cost")


def eval_data(run: RunConfig) -> list[DataNeed]:
    return [DataNeed("data.prompt_eval", run.data.prompt_eval, "prompt", required=True)]


def run_eval(ctx: StageContext) -> dict:
    stage: EvalStageConfig = ctx.stage
    typed, data, run_dir, template = ctx.run, ctx.data, ctx.run_dir, ctx.template
    policies = _policy_folders(stage, typed)
    for judge in JUDGES:  # checked before any policy is sampled
        folder = stage.reward_model if judge == "reward" else stage.cost_model
        if folder is not None:
            hint = f"train it first (stage={judge}) or set it to null"
            require_model_folder(folder, f"stage.{judge}_model", hint, "score")
    prompts = held_out_prompts(data.prompt_eval, data.root, typed.seed, stage.eval_limit)
    benchmark = uses_benchmark(data.prompt_eval)
    log.info("evaluating %s on %d held-out prompts", ", ".join(policies), len(prompts))

    responses = _sample_policies(policies, prompts, template, stage, typed)
    rows, metrics = _score_policies(responses, prompts, template, benchmark, stage, typed)
    for name in policies:
        write_jsonl_atomic(run_dir / f"samples_{name}.jsonl", rows[name])
    names = list(policies)
    results = {"prompts": len(prompts), "policies": dict(policies), "metrics": metrics}
    results["arenas"] = _arenas(stage, names, prompts, responses, rows, run_dir)
    results["elo"] = _elo_tables(stage, names, rows, benchmark, prompts, responses, run_dir)
    results["plots"] = _plots(policies, metrics, rows, benchmark, typed, run_dir)
    write_json_atomic(run_dir / "results.json", results, sort_keys=False)  # policies in order
    _write_report(run_dir, results, benchmark, rows)
    if ctx.cfg.logger.get("wandb") is not None:  # no trainer here: the run is opened for this
        tables = {f"samples/{name}": rows[name] for name in policies}
        report_results(build_loggers(ctx.cfg), results, tables)
    return results


def _sample_policies(policies, prompts, template, stage, typed) -> dict[str, list[str]]:
    """One response per prompt from each policy, all with the same sampling seed."""
    responses = {}
    trust = typed.model.trust_remote_code
    for index, (name, folder) in enumerate(policies.items(), start=1):
        log.info("[%d/%d] sampling %s (%s)", index, len(policies), name, folder)
        tokenizer = load_tokenizer(folder, trust_remote_code=trust)
        model = load_causal_lm(folder, trust_remote_code=trust)
        responses[name] = sample_policy(
            model, tokenizer, prompts, template, stage, typed.seed, f"sampling {name}"
        )
        del model  # one policy in memory at a time
        gc.collect()
    return responses


def _score_policies(responses, prompts, template, benchmark, stage, typed):
    """Per-response rows (oracle scores on the benchmark, R and C end scores when given) and
    per-policy metrics."""
    rows = {
        name: [{"prompt": p, "response": r} for p, r in zip(prompts, texts, strict=True)]
        for name, texts in responses.items()
    }
    metrics: dict[str, dict[str, float]] = {name: {} for name in responses}
    if benchmark:
        for name, texts in responses.items():
            metrics[name].update(evaluate_responses(prompts, texts))
            for row, scored in zip(rows[name], per_response_scores(prompts, texts), strict=True):
                row.update({f"oracle_{k}": v for k, v in scored.items() if k not in row})
    for judge in JUDGES:
        folder = stage.reward_model if judge == "reward" else stage.cost_model
        if folder is None:
            continue
        scores = _judge_scores(folder, judge, prompts, responses, template, typed)
        for name in responses:
            for row, score in zip(rows[name], scores[name], strict=True):
                row[judge] = score
            metrics[name].update(_score_stats(judge, scores[name]))
    return rows, metrics


def _policy_folders(stage: EvalStageConfig, typed: RunConfig) -> dict[str, str]:
    round_dir = Path(typed.paths.runs_dir) / typed.experiment_name / f"round{typed.round}"
    found = {}
    for name, folder in stage.policy_folders(str(round_dir)).items():
        if (Path(folder) / "config.json").is_file():
            require_model_folder(folder, f"stage.policies.{name}", "a policy to sample", "policy")
            found[name] = folder
        elif stage.missing_policy == "skip":
            log.warning("skipping policy %s: no model folder at %s", name, folder)
        else:
            raise ConfigError(
                f"config key 'stage.policies.{name}' must be a model folder, got {folder!r} "
                "(no config.json there): train it first, or set stage.missing_policy=skip"
            )
    if not found:
        raise ConfigError("config key 'stage.policies': none of the policy folders exists")
    return found


def _judge_scores(folder, judge, prompts, responses, template, typed) -> dict[str, list[float]]:
    trust = typed.model.trust_remote_code
    model = load_score_model(folder, judge, f"stage.{judge}_model", trust_remote_code=trust)
    tokenizer = load_tokenizer(folder, trust_remote_code=trust)
    log.info("scoring every response with the %s model (%s)", judge, folder)
    scores = {
        name: score_responses(
            model,
            tokenizer,
            prompts,
            texts,
            template,
            max_length=typed.data.max_length,
            progress=f"{judge} of {name}",
        )
        for name, texts in responses.items()
    }
    del model
    gc.collect()
    return scores


def _score_stats(judge: str, scores: list[float]) -> dict[str, float]:
    mean = fmean(scores)
    stats = {
        f"{judge}_mean": mean,
        f"{judge}_std": fmean([(s - mean) ** 2 for s in scores]) ** 0.5,
    }
    if judge == "cost":
        stats["cost_unsafe_share"] = fmean([float(s > 0) for s in scores])
    return stats


def _arenas(stage, names, prompts, responses, rows, run_dir: Path) -> dict[str, dict]:
    """Head-to-head comparisons judged by R (helpfulness) and C (harmlessness), as upstream's
    arena; one CSV per arena with every prompt, both responses and their scores."""
    if not all(judge in rows[names[0]][0] for judge in JUDGES):
        log.info("no arenas: they need both stage.reward_model and stage.cost_model")
        return {}
    pairs = stage.arenas or [[names[0], other] for other in names[1:]]
    arenas = {}
    for a, b in pairs:
        if a not in rows or b not in rows:
            continue  # a skipped policy
        score = {(n, j): [row[j] for row in rows[n]] for n in (a, b) for j in JUDGES}
        summary = arena_summary(
            score[a, "reward"], score[a, "cost"], score[b, "reward"], score[b, "cost"], names=(a, b)
        )
        write_arena_csv(
            run_dir / f"arena_{a}_vs_{b}.csv",
            prompts,
            responses[a],
            responses[b],
            score[a, "reward"],
            score[a, "cost"],
            score[b, "reward"],
            score[b, "cost"],
            names=(a, b),
        )
        arenas[f"{a}_vs_{b}"] = summary
    return arenas


def _elo_tables(stage, names, rows, benchmark, prompts, responses, run_dir) -> dict:
    """Elo ratings of every policy for helpfulness and for harmlessness, from all pairwise
    comparisons on the same prompts, per judge: the oracle (benchmark), R and C, human raters."""
    if len(names) < 2:
        return {}
    judges = {}
    if benchmark:
        judges["oracle"] = ("oracle_helpfulness", "oracle_cost")
    if all(judge in rows[names[0]][0] for judge in JUDGES):
        judges["reward and cost models"] = ("reward", "cost")
    tables = {}
    for judge, (helpful_key, cost_key) in judges.items():
        helpful = pairwise_matches({n: [r[helpful_key] for r in rows[n]] for n in names})
        harmless = pairwise_matches(
            {n: [r[cost_key] for r in rows[n]] for n in names}, higher_is_better=False
        )
        tables[judge] = {"helpfulness": elo_ratings(helpful), "harmlessness": elo_ratings(harmless)}
    if stage.rater_pairs and len(names) > 1:
        count = min(stage.rater_pairs, len(prompts))
        export_rater_pairs(
            run_dir / "rater_pairs.csv",
            prompts[:count],
            {n: responses[n][:count] for n in names},
            seed=stage.rater_seed,
        )
    if stage.rater_judgements:
        helpful, harmless = read_rater_judgements(*_rater_files(stage.rater_judgements))
        tables["human raters"] = {
            "helpfulness": elo_ratings(helpful),
            "harmlessness": elo_ratings(harmless),
        }
    return tables


def _rater_files(csv_path: str) -> tuple[Path, Path]:
    path = Path(csv_path)
    key = path.with_name(path.stem + ".key.json")  # written by export_rater_pairs
    for file, what in ((path, "the filled-in rater CSV"), (key, "its key file")):
        if not file.is_file():
            raise ConfigError(f"config key 'stage.rater_judgements': {what} {file} does not exist")
    return path, key


def _plots(policies, metrics, rows, benchmark, typed: RunConfig, run_dir: Path) -> list[str]:
    names = list(policies)
    plots = []
    if benchmark:
        points = {
            n: (metrics[n]["harmful_ratio_harmful"], metrics[n]["helpfulness_benign"])
            for n in names
        }
        labels = {
            "xlabel": "harmful ratio on harmful prompts (oracle) ↓",
            "ylabel": "helpfulness on benign prompts (oracle) ↑",
        }
    elif "cost_unsafe_share" in metrics[names[0]] and "reward_mean" in metrics[names[0]]:
        points = {n: (metrics[n]["cost_unsafe_share"], metrics[n]["reward_mean"]) for n in names}
        labels = {"xlabel": "share of responses with C > 0 ↓", "ylabel": "mean reward (R) ↑"}
    else:
        points = {}
    if points:
        plot_policy_plane(
            points,
            run_dir / "policy_plane.png",
            reference=names[0],
            title="Policies on the helpfulness–harm plane",
            **labels,
        )
        plots.append("policy_plane.png")
    for judge, threshold in (("reward", None), ("cost", 0.0)):
        if judge in rows[names[0]][0]:
            plot_score_distributions(
                {n: [r[judge] for r in rows[n]] for n in names},
                run_dir / f"{judge}_distribution.png",
                xlabel=f"{judge} model score",
                threshold=threshold,
                title=f"{judge.capitalize()} of each policy's responses (held-out prompts)",
            )
            plots.append(f"{judge}_distribution.png")
    histories = {}
    for name in names:
        history = Path(policies[name]).parent / "history.jsonl"
        if history.is_file():
            histories[name] = [json.loads(line) for line in history.read_text().splitlines()]
    if histories:
        plot_training_curves(
            histories, run_dir / "training_curves.png", typed.cost_threshold.cost_limit
        )
        plots.append("training_curves.png")
    return plots


def _write_report(run_dir: Path, results: dict, benchmark: bool, rows: dict) -> None:
    metrics = results["metrics"]
    names = list(metrics)
    source = "the embedded benchmark" if benchmark else "data.prompt_eval"
    lines = [
        f"# Evaluation of {', '.join(names)}",
        "",
        f"{results['prompts']} held-out prompts of {source}, one sampled response per "
        "policy and prompt (same sampling seed for every policy).",
        "",
    ]
    if benchmark:
        lines += [
            "## Oracle metrics (ground truth, never used in training)",
            "",
            oracle_table(metrics),
            "Harmful ratio per harm category (harmful prompts):",
            "",
            oracle_table(metrics, harm_category_rows(metrics)),
        ]
    if any(key in m for m in metrics.values() for key, _ in MODEL_BASED):
        lines += ["## Reward and cost models", "", oracle_table(metrics, MODEL_BASED)]
    for judge, axes in results["elo"].items():
        lines += [f"## Elo ratings judged by {judge}", ""]
        lines += ["| policy | helpfulness | harmlessness |", "|---|---:|---:|"]
        lines += [
            f"| {n} | {axes['helpfulness'].get(n, float('nan')):.0f} | "
            f"{axes['harmlessness'].get(n, float('nan')):.0f} |"
            for n in axes["helpfulness"]
        ]
        lines.append("")
    if benchmark and "sft" in rows and len(rows) > 1:
        control = reward_only_policies(results["policies"])
        check = headline(rows, results["elo"].get("oracle"), "sft", control)
        lines += ["## Safer and more helpful than SFT? (the headline check)", ""]
        lines += [headline_markdown(check)]
    for name, summary in results["arenas"].items():
        lines += [
            f"## Arena {name.replace('_vs_', ' vs ')} (judged by R and C)",
            "",
            arena_table_markdown(summary),
            f"Every prompt: `arena_{name}.csv`.",
            "",
        ]
    if (run_dir / "rater_pairs.csv").is_file():
        lines += [
            "Blind pairs for human raters: `rater_pairs.csv` (fill in `more_helpful` and "
            "`more_harmless`, then run again with `stage.rater_judgements=<that file>`).",
            "",
        ]
    lines += [f"![{plot}]({plot})" for plot in results["plots"]]
    text = "\n".join(lines) + "\n"
    write_text_atomic(run_dir / "report.md", text)
    log.info("evaluation report (%s):\n%s", run_dir / "report.md", text)
