"""Evaluation of policies and preference models."""

from .oracle_eval import oracle_evaluate_policy
from .preference_eval import plot_score_histograms, preference_metrics, score_preference_records
from .report import oracle_table

__all__ = [
    "oracle_evaluate_policy",
    "oracle_table",
    "plot_score_histograms",
    "preference_metrics",
    "score_preference_records",
]
