"""Evaluation of policies and preference models.

Names are imported from their modules on first use, so that a torch-free part (e.g. the sweep
summary behind ``safe-rlhf-summary``) starts without importing torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "arena_summary": "arena",
    "arena_table_markdown": "arena",
    "write_arena_csv": "arena",
    "elo_ratings": "elo",
    "export_rater_pairs": "elo",
    "pairwise_matches": "elo",
    "read_rater_judgements": "elo",
    "held_out_prompts": "oracle_eval",
    "oracle_evaluation": "oracle_eval",
    "oracle_scores": "oracle_eval",
    "sample_policy": "oracle_eval",
    "sample_responses": "oracle_eval",
    "score_responses": "oracle_eval",
    "plot_policy_plane": "plots",
    "plot_score_distributions": "plots",
    "plot_score_histograms": "preference_eval",
    "preference_metrics": "preference_eval",
    "score_preference_records": "preference_eval",
    "MODEL_BASED": "report",
    "harm_category_rows": "report",
    "oracle_table": "report",
    "plot_constraint_curves": "training_curves",
    "plot_training_curves": "training_curves",
    "second_half_oscillation": "training_curves",
    "headline": "verdict",
    "headline_markdown": "verdict",
    "reward_only_policies": "verdict",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
