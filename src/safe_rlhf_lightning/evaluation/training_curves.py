"""Curves of a PPO run (λ, costs, rewards, oracle metrics per step) and how much they oscillate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean, pstdev

from ..files import save_figure_atomic

# (history key, axis title) of each panel, in reading order; missing keys are left out.
PANELS = (
    ("lambda", "λ"),
    ("episode_cost", "windowed episode cost (learned C)"),
    ("reward", "reward (learned R)"),
    ("oracle_harmful_ratio_harmful", "oracle harmful ratio, harmful prompts"),
    ("oracle_helpfulness_benign", "oracle helpfulness, benign prompts"),
    ("kl_divergence", "KL(π || π_ref) per response"),
)


def second_half_oscillation(history: Sequence[dict], key: str) -> dict[str, float]:
    """Mean, standard deviation and peak-to-peak range of ``key`` over the second half of the run.

    The second half is where a schedule that has settled should be flat; dual ascent without
    damping keeps overshooting there.
    """
    values = [row[key] for row in history[len(history) // 2 :] if _finite(row.get(key))]
    if not values:
        return {}
    return {"mean": fmean(values), "std": pstdev(values), "range": max(values) - min(values)}


def plot_training_curves(
    histories: dict[str, Sequence[dict]], path: Path, cost_limit: float | None = None
) -> Path:
    """One PNG, one panel per quantity, one line per run (e.g. per λ schedule)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (key, title)
        for key, title in PANELS
        if any(_finite(row.get(key)) for rows in histories.values() for row in rows)
    ]
    columns = 2
    rows_count = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows_count, columns, figsize=(11, 3.2 * rows_count), squeeze=False)
    for axis, (key, title) in zip(axes.flat, panels, strict=False):
        for name, rows in histories.items():
            points = [(row["step"], row[key]) for row in rows if _finite(row.get(key))]
            if points:
                axis.plot(*zip(*points, strict=True), label=name, linewidth=1.2)
        if key == "episode_cost" and cost_limit is not None:
            axis.axhline(cost_limit, color="black", linestyle="--", linewidth=1, label="cost limit")
        axis.set_title(title)
        axis.set_xlabel("PPO step")
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    return save_figure_atomic(figure, path, dpi=110)


def plot_constraint_curves(history: Sequence[dict], limits: dict[str, float], path: Path) -> Path:
    """One PNG of a run under several constraints: each constraint's λ, its windowed episode cost
    minus its limit (above 0: violated), and the oracle's harmful ratio per harm category when
    logged (``oracle_harmful_ratio/<category>``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = sorted(
        {k for row in history for k in row if k.startswith("oracle_harmful_ratio/")}
    )
    panels = [
        ("λ per constraint", {name: f"lambda/{name}" for name in limits}, {}),
        ("windowed episode cost − limit", {n: f"episode_cost/{n}" for n in limits}, limits),
        ("oracle harmful ratio per category", {k.split("/", 1)[1]: k for k in categories}, {}),
    ][: 3 if categories else 2]
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.4), squeeze=False)
    for axis, (title, keys, offsets) in zip(axes.flat, panels, strict=True):
        for label, key in keys.items():
            points = [
                (row["step"], row[key] - offsets.get(label, 0.0))
                for row in history
                if _finite(row.get(key))
            ]
            if points:
                axis.plot(*zip(*points, strict=True), label=label, linewidth=1.2)
        if offsets:
            axis.axhline(0.0, color="black", linestyle="--", linewidth=1, label="limit")
        axis.set_title(title)
        axis.set_xlabel("PPO step")
        axis.legend(fontsize=8)
    return save_figure_atomic(figure, path, dpi=110)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
