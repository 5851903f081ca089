"""Figures comparing policies: the helpfulness–harm plane of the Safe RLHF paper, and overlaid
score distributions (e.g. the cost of each policy's responses, with the safety threshold at 0).

Training curves live in ``training_curves.py``; reward/cost model histograms on labelled pairs
in ``preference_eval.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..files import save_figure_atomic


def plot_policy_plane(
    points: Mapping[str, tuple[float, float]],
    path: str | Path,
    *,
    xlabel: str = "harmful ratio ↓",
    ylabel: str = "helpfulness ↑",
    title: str = "Policies on the helpfulness–harm plane",
    reference: str | None = None,
) -> Path:
    """PNG with each policy as a labelled point ``(x, y)``, e.g. (harmful ratio, helpfulness).

    With ``reference`` (e.g. ``"SFT"``), an arrow goes from that policy to each other one, as
    in the Safe RLHF paper's figures: up and to the left is better.
    """
    if not points:
        raise ValueError("no policies to plot")
    if reference is not None and reference not in points:
        raise ValueError(f"reference {reference!r} is not among the points {list(points)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4.5))
    if reference is not None:
        for name, point in points.items():
            if name != reference:
                axis.annotate(
                    "",
                    xy=point,
                    xytext=points[reference],
                    arrowprops={"arrowstyle": "->", "color": "grey", "linewidth": 1},
                )
    for name, (x, y) in points.items():
        axis.scatter([x], [y], s=40, zorder=3)
        axis.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    return save_figure_atomic(figure, path, dpi=120)


def plot_score_distributions(
    scores: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    xlabel: str,
    title: str,
    threshold: float | None = None,
    bins: int = 40,
) -> Path:
    """PNG of overlaid histograms, one per policy, on shared bins so their heights compare.

    ``threshold`` draws a dashed vertical line (0 for a cost: to its right is unsafe).
    """
    values = [v for policy_scores in scores.values() for v in policy_scores]
    if not values:
        raise ValueError("no scores to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    value_range = (min(values), max(values))
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, policy_scores in scores.items():
        axis.hist(
            policy_scores,
            bins=bins,
            range=value_range,
            alpha=0.5,
            histtype="stepfilled",
            label=f"{name} (n={len(policy_scores)})",
        )
    if threshold is not None:
        axis.axvline(threshold, color="black", linewidth=1, linestyle="--")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("responses")
    axis.set_title(title)
    axis.legend()
    return save_figure_atomic(figure, path, dpi=120)
