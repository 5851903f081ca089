"""Evaluation of policies and preference models."""

from .oracle_eval import oracle_evaluate_policy
from .report import oracle_table

__all__ = ["oracle_evaluate_policy", "oracle_table"]
