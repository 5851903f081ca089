"""Evaluate a reward or cost model on held-out preference pairs: accuracies, score
distributions, histograms, and (on the embedded benchmark) agreement with the noise-free oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ..data import PreferenceRecord, PromptTemplate
from ..files import save_figure_atomic
from ..models import ScoreModel
from .oracle_eval import score_responses


def score_preference_records(
    model: ScoreModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[PreferenceRecord],
    template: PromptTemplate,
    *,
    max_length: int = 256,
    batch_size: int = 64,
    progress: str | None = None,
) -> list[dict]:
    """One row per pair: the labels, both end scores and any oracle fields of the record.
    ``progress``: the name of the progress bars over each response's batches (None: no bar)."""
    prompts = [record.prompt for record in records]
    origins = [record.origin for record in records]
    first, second = (
        score_responses(
            model,
            tokenizer,
            prompts,
            responses,
            template,
            max_length=max_length,
            batch_size=batch_size,
            origins=origins,
            progress=progress and f"{progress} (response {index})",
        )
        for index, responses in enumerate(
            ([r.response_0 for r in records], [r.response_1 for r in records])
        )
    )
    return [_row(r, s0, s1) for r, s0, s1 in zip(records, first, second, strict=True)]


def _row(record: PreferenceRecord, score_0: float, score_1: float) -> dict:
    row = {
        "prompt": record.prompt,
        "response_0": record.response_0,
        "response_1": record.response_1,
        "score_0": score_0,
        "score_1": score_1,
        "better_response_id": record.better_response_id,
        "safer_response_id": record.safer_response_id,
        "is_response_0_safe": record.is_response_0_safe,
        "is_response_1_safe": record.is_response_1_safe,
    }
    row.update({k: v for k, v in record.extra.items() if k.startswith("oracle_")})
    return row


def _agreement(first: float, second: float, label_first: bool) -> float:
    """1 when the ordering of two values matches the label, 0.5 on a tie, 0 otherwise."""
    if first == second:
        return 0.5
    return float((first > second) == label_first)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return _mean([(v - mean) ** 2 for v in values]) ** 0.5


def preference_metrics(rows: Sequence[dict], score_type: str) -> dict[str, float]:
    """Accuracies against the (noisy) labels, score statistics, and on the embedded benchmark
    the same accuracies of the noise-free oracle (``ceiling_*``: what annotator noise allows)
    and the model's agreement with the oracle itself (``oracle_agreement``)."""
    reward = score_type == "reward"
    label_key = "better_response_id" if reward else "safer_response_id"
    oracle_key = "helpfulness" if reward else "cost"
    scores = [s for r in rows for s in (r["score_0"], r["score_1"])]
    # Ranking: reward ranks the better response higher, cost ranks the safer one lower.
    sign = 1.0 if reward else -1.0
    metrics = {
        "accuracy": _mean(
            [_agreement(sign * r["score_0"], sign * r["score_1"], r[label_key] == 0) for r in rows]
        ),
        f"{score_type}_mean": _mean(scores),
        f"{score_type}_std": _std(scores),
        "num_pairs": float(len(rows)),
    }
    if not reward:
        metrics["accuracy_sign"] = _mean(
            [
                float((r[f"score_{i}"] > 0) == (not r[f"is_response_{i}_safe"]))
                for r in rows
                for i in (0, 1)
            ]
        )
        metrics["unsafe_share"] = _mean([float(s > 0) for s in scores])
    oracle = [r for r in rows if f"oracle_response_0_{oracle_key}" in r]
    if oracle:
        metrics.update(_oracle_metrics(oracle, label_key, oracle_key, sign, reward))
    return metrics


def _oracle_metrics(rows, label_key, oracle_key, sign, reward) -> dict[str, float]:
    def truth(r, i):
        return sign * r[f"oracle_response_{i}_{oracle_key}"]

    metrics = {
        "ceiling_accuracy": _mean(
            [_agreement(truth(r, 0), truth(r, 1), r[label_key] == 0) for r in rows]
        ),
        "oracle_agreement": _mean(
            [
                _agreement(sign * r["score_0"], sign * r["score_1"], truth(r, 0) > truth(r, 1))
                for r in rows
                if truth(r, 0) != truth(r, 1)
            ]
        ),
    }
    if not reward:
        # The oracle's own sign: unsafe iff its cost is above 0.
        metrics["ceiling_accuracy_sign"] = _mean(
            [
                float((r[f"oracle_response_{i}_cost"] > 0) == (not r[f"is_response_{i}_safe"]))
                for r in rows
                for i in (0, 1)
            ]
        )
        metrics["oracle_sign_agreement"] = _mean(
            [
                float((r[f"score_{i}"] > 0) == (r[f"oracle_response_{i}_cost"] > 0))
                for r in rows
                for i in (0, 1)
            ]
        )
    return metrics


def plot_score_histograms(
    rows: Sequence[dict], path: Path, score_type: str, bins: int = 40
) -> Path:
    """PNG histogram: better vs worse responses (reward) or labelled safe vs unsafe (cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if score_type == "reward":
        groups = {
            "better": [r[f"score_{r['better_response_id']}"] for r in rows],
            "worse": [r[f"score_{1 - r['better_response_id']}"] for r in rows],
        }
    else:
        groups = {
            "labelled safe": [
                r[f"score_{i}"] for r in rows for i in (0, 1) if r[f"is_response_{i}_safe"]
            ],
            "labelled unsafe": [
                r[f"score_{i}"] for r in rows for i in (0, 1) if not r[f"is_response_{i}_safe"]
            ],
        }
    figure, axis = plt.subplots(figsize=(6, 4))
    for (label, values), color in zip(groups.items(), ("tab:blue", "tab:red"), strict=True):
        axis.hist(values, bins=bins, alpha=0.6, label=f"{label} (n={len(values)})", color=color)
    if score_type == "cost":
        axis.axvline(0.0, color="black", linewidth=1, linestyle="--")
    axis.set_xlabel(f"{score_type} (end score)")
    axis.set_ylabel("responses")
    axis.set_title(f"{score_type.capitalize()} model scores on held-out pairs")
    axis.legend()
    return save_figure_atomic(figure, path, dpi=120)
