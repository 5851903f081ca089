"""Evaluation of policies and preference models."""

from .oracle_eval import oracle_evaluate_policy

__all__ = ["oracle_evaluate_policy"]
