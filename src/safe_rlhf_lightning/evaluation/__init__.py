"""Evaluation of policies and preference models."""

from .arena import arena_summary, arena_table_markdown, write_arena_csv
from .elo import elo_ratings, export_rater_pairs, pairwise_matches, read_rater_judgements
from .oracle_eval import oracle_scores, sample_responses, score_responses
from .plots import plot_policy_plane, plot_score_distributions
from .preference_eval import plot_score_histograms, preference_metrics, score_preference_records
from .report import MODEL_BASED, harm_category_rows, oracle_table
from .training_curves import plot_training_curves, second_half_oscillation

__all__ = [
    "MODEL_BASED",
    "arena_summary",
    "arena_table_markdown",
    "elo_ratings",
    "export_rater_pairs",
    "harm_category_rows",
    "oracle_scores",
    "oracle_table",
    "pairwise_matches",
    "plot_policy_plane",
    "plot_score_distributions",
    "plot_score_histograms",
    "plot_training_curves",
    "preference_metrics",
    "read_rater_judgements",
    "sample_responses",
    "score_preference_records",
    "score_responses",
    "second_half_oscillation",
    "write_arena_csv",
]
