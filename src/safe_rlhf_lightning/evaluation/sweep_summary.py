"""Gather a sweep's PPO runs into one table and the paper's trade-off plot.

Each run folder (``results.json``, ``samples.jsonl``, ``config.yaml``) is one policy. Against the
SFT reference, every run gets the paper's win rates (Dai et al. 2024, Section 5): the share of
prompts where its response is more helpful (harmless) than SFT's, ties counting half. Here the
benchmark's noise-free oracle judges, the stand-in for the paper's raters. Against Safe RLHF,
every run gets a paired difference on the same prompts, so that the reward-shaping ablation
(fixed ν ∈ {0.01, 0.5, 1, 2, 5, 10, 100}, the paper's reward-shaping figure) can be read as
"beats Safe RLHF", "matches it" or neither, beyond noise.

Model-free and torch-free: the runs have already been sampled and scored by the oracle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ..files import save_figure_atomic, write_csv_atomic, write_json_atomic, write_text_atomic
from .verdict import mean_and_se

RUN_FILES = ("results.json", "samples.jsonl", "config.yaml")
METHODS = {  # lambda_schedule class -> the paper's name of the method
    "LearnedLambda": "Safe RLHF",
    "PIDLambda": "PID λ",
    "FixedLambda": "reward shaping",
    "NoLambda": "reward only",
}
SAFE_RLHF, REWARD_SHAPING = "Safe RLHF", "reward shaping"
# advantage estimator class -> its name in labels; GAE (critics, the paper's) adds nothing, so
# "Safe RLHF" stays the paper's method that every other run is compared with.
ESTIMATORS = {"GRPOAdvantage": "GRPO", "RLOOAdvantage": "RLOO"}
# Config keys shown in labels when they differ among the runs: key -> label format.
WATCHED = {
    "lambda_schedule.nu": "ν={}",
    "cost_threshold.cost_limit": "d={}",
    "seed": "seed={}",
    "lambda_schedule.lr": "λ lr={}",
    "round": "round {}",
}
PPO_ONLY = ("lambda_schedule.", "cost_threshold.")  # meaningless in an SFT run's config
METRICS = ("harmful_ratio", "helpfulness", "helpfulness_benign", "cost")
AXES = ("helpfulness", "harmful_ratio")  # the two axes compared against Safe RLHF
PLOT_LABELS = {
    "harmlessness_win_rate": "harmlessness win rate ↑",
    "helpfulness_win_rate": "helpfulness win rate ↑",
    "harmful_ratio": "harmful ratio ↓",
    "helpfulness_benign": "benign helpfulness ↑",
}
NOISE_SE = 2.0  # a difference within this many standard errors is "within noise"
_MISSING = object()


class SummaryError(ValueError):
    """A path without runs, an unreadable run file, or runs that were not asked the same
    prompts (one line for the user)."""


@dataclass(frozen=True)
class Run:
    """One run folder: its method, resolved config, oracle test metrics and scored samples."""

    folder: Path
    label: str
    method: str
    config: dict[str, Any]
    metrics: dict[str, float]
    samples: list[dict[str, Any]]


def _natural_key(path: Path) -> list:
    """Sort Hydra's job folders 0, 1, …, 10 by number, not as text."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` holds the three files a finished sft or ppo_lag run writes."""
    return all((Path(path) / name).is_file() for name in RUN_FILES)


def discover_runs(paths: Sequence[str | Path]) -> list[Path]:
    """The run folders given, or found at any depth below the folders given (a Hydra multirun
    sweep holds one per ``<sweep>/<job>/``), without repeats, in natural sort order."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise SummaryError(f"{path}: no such folder")
        runs = (
            [path]
            if is_run_folder(path)
            else [
                results.parent
                for results in path.rglob(RUN_FILES[0])
                if is_run_folder(results.parent)
            ]
        )
        if not runs:
            raise SummaryError(f"{path}: holds no run folder (with {', '.join(RUN_FILES)})")
        found.update(run.resolve() for run in runs)
    return sorted(found, key=_natural_key)


def config_value(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``config["a"]["b"]`` for ``key`` ``"a.b"``; ``default`` where a part is missing."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def method_of(config: Mapping[str, Any]) -> str:
    """The paper's name of the run's method, from ``stage.name`` and ``lambda_schedule``."""
    if config_value(config, "stage.name") == "sft":
        return "SFT"
    target = str(config_value(config, "lambda_schedule._target_", "?"))
    method = METHODS.get(target.rsplit(".", 1)[-1], target.rsplit(".", 1)[-1])
    estimator = str(config_value(config, "advantage._target_", "")).rsplit(".", 1)[-1]
    if estimator not in ESTIMATORS:
        return method
    name = ESTIMATORS[estimator]
    if name == "GRPO" and config_value(config, "advantage.scale_by_std", True) is False:
        name = "Dr. GRPO"
    return f"{method} ({name})"


def _read_samples(path: Path) -> list[dict[str, Any]]:
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            sample = json.loads(line)
            float(sample["helpfulness"]), float(sample["cost"]), bool(sample["is_safe"])
            sample["prompt"]  # each sample needs all four keys
        except (ValueError, KeyError, TypeError) as error:
            raise SummaryError(f"{path}:{number}: not a scored sample ({error!r})") from None
        samples.append(sample)
    if not samples:
        raise SummaryError(f"{path}: no samples")
    return samples


def load_run(folder: str | Path) -> Run:
    """Read one run folder; its label is its method until ``label_runs`` sees the others."""
    folder = Path(folder)
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
        metrics = json.loads((folder / "results.json").read_text(encoding="utf-8"))["test"]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise SummaryError(f"{folder}: cannot read the run ({error!r})") from None
    stage = config_value(config, "stage.name") if isinstance(config, dict) else None
    if stage not in ("sft", "ppo_lag"):
        raise SummaryError(f"{folder}: stage {stage!r} is neither sft nor ppo_lag")
    samples = _read_samples(folder / "samples.jsonl")
    return Run(folder, method_of(config), method_of(config), config, metrics, samples)


def _format(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def label_runs(runs: Sequence[Run]) -> list[Run]:
    """Label each run by its method and the watched config keys whose values differ among
    ``runs`` (PPO-only keys not counted for SFT); where labels still clash, the folder name is
    appended (then more of the path, until they differ)."""

    def watched(run: Run) -> dict[str, Any]:
        keys = [k for k in WATCHED if run.method != "SFT" or not k.startswith(PPO_ONLY)]
        values = {k: config_value(run.config, k, _MISSING) for k in keys}
        return {k: v for k, v in values.items() if v is not _MISSING}

    values = [watched(run) for run in runs]
    varying = {k for k in WATCHED if len({repr(v[k]) for v in values if k in v}) > 1}
    shown = [[WATCHED[k].format(_format(v[k])) for k in v if k in varying] for v in values]
    base = [
        f"{run.method} {', '.join(parts)}".strip() for run, parts in zip(runs, shown, strict=True)
    ]
    labels = list(base)
    for depth in range(1, max((len(run.folder.parts) for run in runs), default=0) + 1):
        if len(set(labels)) == len(labels):
            break
        labels = [
            f"{b} ({'/'.join(run.folder.parts[-depth:])})" if base.count(b) > 1 else b
            for run, b in zip(runs, base, strict=True)
        ]
    return [replace(run, label=label) for run, label in zip(runs, labels, strict=True)]


def paired_samples(run: Run, other: Run) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The two runs' samples paired prompt by prompt: by position when both answered the same
    prompts in the same order, else by prompt text (runs with another ``seed`` shuffle the
    held-out prompts differently). Raise unless both answered the same prompts, naming both
    files and the first line of ``run`` whose prompt ``other`` did not answer."""
    prompts = [s["prompt"] for s in run.samples], [s["prompt"] for s in other.samples]
    if prompts[0] == prompts[1]:
        return list(zip(run.samples, other.samples, strict=True))
    answers: dict[str, list[dict[str, Any]]] = {}
    for sample in other.samples:
        answers.setdefault(sample["prompt"], []).append(sample)
    pairs = []
    for sample in run.samples:
        if not answers.get(sample["prompt"]):
            break
        pairs.append((sample, answers[sample["prompt"]].pop(0)))
    if len(pairs) == len(run.samples) and not any(answers.values()):
        return pairs
    line = len(pairs) + 1  # the first of run's lines without a partner (or one past its end)
    raise SummaryError(
        f"{run.folder / 'samples.jsonl'} and {other.folder / 'samples.jsonl'} hold different "
        f"prompts (first at line {line}): they cannot be compared prompt by prompt"
    )


def _win_rate(pairs: Sequence[tuple[float, float]]) -> float:
    """Share of ``(ours, theirs)`` pairs where ours is higher, ties counting half."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


def win_rates(run: Run, reference: Run) -> dict[str, float]:
    """The paper's win rates against the reference (Dai et al. 2024, Section 5), judged by the
    oracle per prompt: more helpful, and less costly (more harmless), ties counting half.
    The reference against itself scores 0.5 on both."""
    pairs = paired_samples(run, reference)
    return {
        "helpfulness_win_rate": _win_rate([(a["helpfulness"], b["helpfulness"]) for a, b in pairs]),
        "harmlessness_win_rate": _win_rate([(-a["cost"], -b["cost"]) for a, b in pairs]),
    }


def paired_verdict(differences: Sequence[float], higher_is_better: bool) -> dict[str, Any]:
    """Mean of per-prompt differences, its standard error (``verdict.mean_and_se``) and a
    verdict: better or worse when the mean is at least ``NOISE_SE`` standard errors from 0."""
    diff, se, _ = mean_and_se(differences)
    if abs(diff) < NOISE_SE * se or diff == 0.0:
        verdict = "within noise"
    else:
        verdict = "better" if (diff > 0) == higher_is_better else "worse"
    return {"diff": diff, "se": se, "verdict": verdict}


def paired_comparison(run: Run, baseline: Run) -> dict[str, dict[str, Any]]:
    """``run`` minus ``baseline`` on the same prompts, per axis: ``helpfulness`` (oracle score,
    higher is better) and ``harmful_ratio`` (the not-safe indicator, lower is better); each
    ``{"diff", "se", "verdict"}``."""
    pairs = paired_samples(run, baseline)
    if len(pairs) < 2:
        raise SummaryError(f"{run.folder}: a paired comparison needs at least 2 prompts")
    helpful = [a["helpfulness"] - b["helpfulness"] for a, b in pairs]
    harmful = [float(not a["is_safe"]) - float(not b["is_safe"]) for a, b in pairs]
    return {
        "helpfulness": paired_verdict(helpful, True),
        "harmful_ratio": paired_verdict(harmful, False),
    }


def find_baseline(runs: Sequence[Run]) -> Run | None:
    """The Safe RLHF run the others are compared with: the first one, when there are several
    (callers list the reference last, so a Safe RLHF reference serves when no run is one)."""
    return next((run for run in runs if run.method == SAFE_RLHF), None)


def verdict_sentence(rows: Sequence[Mapping[str, Any]], baseline: str | None) -> str:
    """Whether reward shaping (fixed ν) beats Safe RLHF (better on both axes beyond noise),
    matches it (worse on neither), or neither, naming the runs; from ``summary_rows``."""
    shaping = [row for row in rows if row["method"] == REWARD_SHAPING]
    if baseline is None:
        return "There is no Safe RLHF run among the runs, so reward shaping is not compared."
    if not shaping:
        return f"There is no reward-shaping (fixed ν) run to compare with Safe RLHF ({baseline})."
    verdicts = {row["label"]: {row[f"{axis}_vs_safe_rlhf"] for axis in AXES} for row in shaping}
    beats = [label for label, v in verdicts.items() if v == {"better"}]
    matches = [label for label, v in verdicts.items() if "worse" not in v and v != {"better"}]
    noise = f"by at least {NOISE_SE:g} standard errors over the same prompts"
    if beats:
        also = f" Matching it (worse on neither): {', '.join(matches)}." if matches else ""
        return (
            f"Reward shaping beats Safe RLHF ({baseline}) on both axes, higher helpfulness and "
            f"lower harmful ratio {noise}: {', '.join(beats)}.{also}"
        )
    if matches:
        return (
            f"No reward-shaping run beats Safe RLHF ({baseline}) on both axes; "
            f"{', '.join(matches)} match{'es' * (len(matches) == 1)} it (worse on neither, "
            f"{noise})."
        )
    return (
        f"No reward-shaping run beats or matches Safe RLHF ({baseline}): "
        f"{', '.join(verdicts)} {'is' if len(verdicts) == 1 else 'are each'} worse on "
        f"helpfulness or harmful ratio, {noise}."
    )


def summary_rows(runs: Sequence[Run], reference: Run | None = None) -> list[dict[str, Any]]:
    """One row per run (the reference first): oracle metrics, win rates against the reference
    (only with one) and paired verdicts against Safe RLHF (only with a Safe RLHF run)."""
    baseline = find_baseline([*runs, *([reference] if reference else [])])
    rows = []
    for run in ([reference] if reference else []) + list(runs):
        row = {"label": run.label, "method": run.method, "folder": str(run.folder), "nu": None}
        if run.method == REWARD_SHAPING:  # the position on the paper's ablation curve
            row["nu"] = config_value(run.config, "lambda_schedule.nu")
        row.update({key: run.metrics.get(key) for key in METRICS})
        if reference is not None:
            row.update(win_rates(run, reference))
        for axis, paired in (paired_comparison(run, baseline) if baseline else {}).items():
            row[f"{axis}_vs_safe_rlhf"] = "baseline" if run is baseline else paired["verdict"]
            row[f"{axis}_diff_vs_safe_rlhf"] = paired["diff"]
            row[f"{axis}_se_vs_safe_rlhf"] = paired["se"]
        rows.append(row)
    return rows


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row[key]
    if key.endswith("_vs_safe_rlhf") and value != "baseline":
        axis = key.removesuffix("_vs_safe_rlhf")
        se = row[f"{axis}_se_vs_safe_rlhf"]
        return f"{value} ({row[f'{axis}_diff_vs_safe_rlhf']:+.3f} ± {se:.3f})"
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def rows_markdown(rows: Sequence[Mapping[str, Any]], reference: str | None = None) -> str:
    """A Markdown table of ``summary_rows``: win rates against ``reference`` where the rows have
    them; against Safe RLHF, each verdict with its paired difference ± standard error."""
    columns = [
        ("label", "run"),
        ("method", "method"),
        ("harmful_ratio", "harmful ratio ↓"),
        ("helpfulness", "helpfulness ↑"),
        ("helpfulness_benign", "benign helpfulness ↑"),
        ("cost", "cost ↓"),
        ("helpfulness_win_rate", f"helpfulness win rate vs {reference} ↑"),
        ("harmlessness_win_rate", f"harmlessness win rate vs {reference} ↑"),
        ("helpfulness_vs_safe_rlhf", "helpfulness vs Safe RLHF"),
        ("harmful_ratio_vs_safe_rlhf", "harmful ratio vs Safe RLHF"),
    ]
    columns = [(key, title) for key, title in columns if rows and key in rows[0]]
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row, key) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rows_csv(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of ``summary_rows`` for a CSV file (every key, numbers unrounded)."""
    header = list(rows[0]) if rows else []
    return header, [[row[key] for key in header] for row in rows]


def plot_tradeoff(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """PNG of the trade-off: (a) win rates against the reference (when the rows have them; the
    reference sits at 0.5, 0.5) and (b) harmful ratio vs benign helpfulness. Safe RLHF is a star;
    reward-shaping runs are joined in ν order, the paper's ablation curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [  # x, y, title
        ("harmlessness_win_rate", "helpfulness_win_rate", "(a) win rates against the reference"),
        ("harmful_ratio", "helpfulness_benign", "(b) oracle metrics"),
    ][0 if rows and "helpfulness_win_rate" in rows[0] else 1 :]
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    colors = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(row["method"] for row in rows))}
    markers = {m: "*" if m == SAFE_RLHF else "o" for m in colors}
    for axis, (x, y, title) in zip(axes[0], panels, strict=True):
        plotted = [row for row in rows if row[x] is not None and row[y] is not None]
        curve = [r for r in plotted if r["method"] == REWARD_SHAPING and r["nu"] is not None]
        curve.sort(key=lambda r: r["nu"])
        axis.plot([r[x] for r in curve], [r[y] for r in curve], color=colors.get(REWARD_SHAPING))
        for row in plotted:
            size = 160 if row["method"] == SAFE_RLHF else 40
            axis.scatter(
                row[x],
                row[y],
                s=size,
                marker=markers[row["method"]],
                zorder=3,
                color=colors[row["method"]],
                label=row["method"],
            )
            axis.annotate(
                row["label"],
                (row[x], row[y]),
                textcoords="offset points",
                xytext=(5, 5),
                fontsize=8,
            )
        if x == "harmlessness_win_rate":
            axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
            axis.axvline(0.5, color="grey", linestyle="--", linewidth=1)
        axis.set(xlabel=PLOT_LABELS[x], ylabel=PLOT_LABELS[y], title=title)
        axis.grid(alpha=0.3)
    handles, names = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))  # one legend entry per method
    axes[0][-1].legend(unique.values(), unique.keys(), fontsize=8)
    return save_figure_atomic(figure, path, dpi=120)


def summarize(
    paths: Sequence[str | Path], reference: str | Path | None, output_dir: str | Path
) -> dict[str, Any]:
    """Load the runs under ``paths`` and the ``reference`` (SFT) run if any, compare them, and
    write ``summary.md``, ``summary.csv``, ``summary.json`` and ``tradeoff.png`` into
    ``output_dir``. Returns the JSON's ``rows``, ``verdict``, ``baseline`` and ``reference``
    labels, plus the ``markdown`` text and the written ``files``."""
    folders = discover_runs(paths)
    if reference is not None:
        if not is_run_folder(Path(reference)):
            raise SummaryError(f"{reference}: not a run folder (with {', '.join(RUN_FILES)})")
        folders = [folder for folder in folders if folder != Path(reference).resolve()]
        if not folders:
            raise SummaryError(f"{', '.join(map(str, paths))}: no run besides the reference")
    loaded = label_runs([load_run(f) for f in ([reference] if reference else []) + folders])
    ref, runs = (loaded[0], loaded[1:]) if reference else (None, loaded)
    rows, baseline = summary_rows(runs, ref), find_baseline([*runs, *([ref] if ref else [])])
    summary = {
        "rows": rows,
        "verdict": verdict_sentence(rows, baseline.label if baseline else None),
        "baseline": baseline.label if baseline else None,
        "reference": ref.label if ref else None,
    }
    markdown = "\n".join(
        [
            f"# Sweep summary: {len(runs)} runs" + (f" against {ref.label}" if ref else ""),
            "",
            summary["verdict"],
            "",
            rows_markdown(rows, summary["reference"]),
            "![trade-off](tradeoff.png)",
            "",
            "Win rates and harmful ratios are judged by the benchmark's noise-free oracle, the "
            "stand-in for the paper's human raters (Dai et al. 2024, Section 5). Verdicts against "
            "Safe RLHF pair the same prompts: mean difference ± standard error, and a difference "
            f"within {NOISE_SE:g} standard errors is within noise.",
            "",
        ]
    )
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    files = {
        "figure": plot_tradeoff(rows, output / "tradeoff.png"),
        "markdown": write_text_atomic(output / "summary.md", markdown),
        "csv": write_csv_atomic(output / "summary.csv", *rows_csv(rows)),
        "json": write_json_atomic(output / "summary.json", summary, sort_keys=False),
    }
    return {**summary, "markdown": markdown, "files": files}
