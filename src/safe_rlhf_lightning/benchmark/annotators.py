"""Simulated crowd annotators: noisy PKU-SafeRLHF labels from the oracle's scores.

- ``better_response_id``: Bradley–Terry choice on oracle helpfulness,
  P(response 0 better) = sigmoid((h0 - h1) / better_temperature).
- ``safer_response_id``: Bradley–Terry choice on oracle cost,
  P(response 0 safer) = sigmoid((c1 - c0) / safer_temperature).
- ``is_response_i_safe``: the oracle's is_safe, flipped with probability safety_label_error_rate.
- Consistency (as in the real data): when exactly one response is labelled safe, it is the safer
  one, whatever the Bradley–Terry draw said.

The default temperatures were chosen so that, on the generated pair distribution, the labels agree
with the noise-free oracle about 77% of the time (pairs where the oracle ties are left out), near
the paper's inter-annotator agreement. `generate_benchmark` measures and records it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from safe_rlhf_lightning.benchmark.oracle import Oracle, OracleScore

DEFAULT_BETTER_TEMPERATURE = 0.9
DEFAULT_SAFER_TEMPERATURE = 2.5
DEFAULT_SAFETY_LABEL_ERROR_RATE = 0.03
_TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PreferenceLabels:
    better_response_id: int
    safer_response_id: int
    is_response_0_safe: bool
    is_response_1_safe: bool


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class SimulatedAnnotator:
    """Labels response pairs; deterministic given the seed and the order of calls."""

    def __init__(
        self,
        oracle: Oracle | None = None,
        *,
        seed: int | str = 0,
        better_temperature: float = DEFAULT_BETTER_TEMPERATURE,
        safer_temperature: float = DEFAULT_SAFER_TEMPERATURE,
        safety_label_error_rate: float = DEFAULT_SAFETY_LABEL_ERROR_RATE,
    ) -> None:
        if better_temperature < 0 or safer_temperature < 0:
            raise ValueError("temperatures must be >= 0 (0 means noise-free)")
        if not 0.0 <= safety_label_error_rate <= 1.0:
            raise ValueError(
                f"safety_label_error_rate must be in [0, 1], got {safety_label_error_rate}"
            )
        self.oracle = oracle or Oracle()
        self.better_temperature = better_temperature
        self.safer_temperature = safer_temperature
        self.safety_label_error_rate = safety_label_error_rate
        self._rng = random.Random(seed)

    def label(self, prompt: str, response_0: str, response_1: str) -> PreferenceLabels:
        score_0 = self.oracle.score(prompt, response_0)
        score_1 = self.oracle.score(prompt, response_1)
        return self.label_scores(score_0, score_1)

    def label_scores(self, score_0: OracleScore, score_1: OracleScore) -> PreferenceLabels:
        better = self._choose(score_0.helpfulness, score_1.helpfulness, self.better_temperature)
        # Lower cost is safer, so compare negated costs.
        safer = self._choose(-score_0.cost, -score_1.cost, self.safer_temperature)
        safe_0 = self._noisy_flag(score_0.is_safe)
        safe_1 = self._noisy_flag(score_1.is_safe)
        if safe_0 != safe_1:
            safer = 0 if safe_0 else 1
        return PreferenceLabels(better, safer, safe_0, safe_1)

    def safety_label(self, score: OracleScore) -> bool:
        """The noisy is-safe label of one response (flipped with ``safety_label_error_rate``)."""
        return self._noisy_flag(score.is_safe)

    def _choose(self, value_0: float, value_1: float, temperature: float) -> int:
        """Index of the preferred response under Bradley–Terry noise."""
        draw = self._rng.random()  # always drawn, so the stream does not depend on ties
        gap = value_0 - value_1
        if abs(gap) <= _TIE_TOLERANCE:
            return 0 if draw < 0.5 else 1
        if temperature == 0:
            return 0 if gap > 0 else 1
        return 0 if draw < _sigmoid(gap / temperature) else 1

    def _noisy_flag(self, flag: bool) -> bool:
        return (not flag) if self._rng.random() < self.safety_label_error_rate else flag


def label_agreement(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Agreement of the noisy labels with the noise-free oracle columns of preference rows.

    Pairs where the oracle ties (equal helpfulness, resp. equal cost) are left out of the
    ``better``, resp. ``safer``, agreement. ``safety_label_accuracy`` is over both responses.
    """
    better_hits = better_total = safer_hits = safer_total = meta_hits = meta_total = 0
    for row in rows:
        h0, h1 = row["oracle_response_0_helpfulness"], row["oracle_response_1_helpfulness"]
        c0, c1 = row["oracle_response_0_cost"], row["oracle_response_1_cost"]
        if abs(h0 - h1) > _TIE_TOLERANCE:
            better_total += 1
            better_hits += row["better_response_id"] == (0 if h0 > h1 else 1)
        if abs(c0 - c1) > _TIE_TOLERANCE:
            safer_total += 1
            safer_hits += row["safer_response_id"] == (0 if c0 < c1 else 1)
        for i, cost in ((0, c0), (1, c1)):
            meta_total += 1
            meta_hits += row[f"is_response_{i}_safe"] == (cost <= 0)
    return {
        "better": better_hits / max(better_total, 1),
        "safer": safer_hits / max(safer_total, 1),
        "safety_label_accuracy": meta_hits / max(meta_total, 1),
        "num_pairs_better": float(better_total),
        "num_pairs_safer": float(safer_total),
    }
