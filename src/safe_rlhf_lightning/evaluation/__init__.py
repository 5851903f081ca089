"""Evaluation of policies and preference models."""

from .oracle_eval import oracle_evaluate_policy
from .preference_eval import plot_score_histograms, preference_metrics, score_preference_records
from .report import oracle_table
from .training_curves import plot_training_curves, second_half_oscillation

__all__ = [
    "oracle_evaluate_policy",
    "oracle_table",
    "plot_score_histograms",
    "plot_training_curves",
    "preference_metrics",
    "score_preference_records",
    "second_half_oscillation",
]
