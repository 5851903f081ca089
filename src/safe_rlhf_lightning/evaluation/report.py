"""Small Markdown reports of oracle metrics."""

from __future__ import annotations

from collections.abc import Mapping

# The headline metrics, in reading order, with the direction that is better.
HEADLINE = (
    ("helpfulness_benign", "helpfulness (benign prompts) ↑"),
    ("helpfulness_dual_use", "helpfulness (dual-use prompts) ↑"),
    ("harmful_ratio_harmful", "harmful ratio (harmful prompts) ↓"),
    ("harmful_ratio_dual_use", "harmful ratio (dual-use prompts) ↓"),
    ("refusal_rate_benign", "refusal rate (benign prompts) ↓"),
    ("cost", "mean oracle cost ↓"),
    ("unrecognized_share", "share of words outside the world's sentences ↓"),
    ("length", "mean length (words)"),
    ("num_responses", "responses scored"),
)


# Metrics from the learned reward and cost models (any data, not only the benchmark).
MODEL_BASED = (
    ("reward_mean", "mean reward (R) ↑"),
    ("cost_mean", "mean cost (C) ↓"),
    ("cost_unsafe_share", "share of responses with C > 0 ↓"),
)


def harm_category_rows(columns: Mapping[str, Mapping[str, float]]) -> tuple[tuple[str, str], ...]:
    """Rows of the per-category harmful ratios that any column has (``harmful_ratio/<name>``)."""
    keys = sorted({k for metrics in columns.values() for k in metrics if "/" in k})
    return tuple((key, f"harmful ratio: {key.split('/', 1)[1]} ↓") for key in keys)


def oracle_table(
    columns: Mapping[str, Mapping[str, float]],
    rows: tuple[tuple[str, str], ...] = HEADLINE,
) -> str:
    """A Markdown table: one row per metric of ``rows`` (key, label) that any column has, one
    column per policy (e.g. init, SFT)."""
    names = list(columns)
    lines = [
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label in rows:
        if any(key in metrics for metrics in columns.values()):
            cells = [_cell(columns[name].get(key)) for name in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.3f}"
