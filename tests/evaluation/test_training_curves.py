"""Oscillation figures and the PNG of a PPO run's curves."""

from __future__ import annotations

import pytest

from safe_rlhf_lightning.evaluation import (
    plot_constraint_curves,
    plot_training_curves,
    second_half_oscillation,
)


def test_second_half_oscillation_by_hand():
    history = [{"step": i, "lambda": v} for i, v in enumerate([9.0, 9.0, 1.0, 3.0, 1.0, 3.0])]
    stats = second_half_oscillation(history, "lambda")  # second half: 3, 1, 3
    assert stats["mean"] == pytest.approx(7 / 3)
    assert stats["range"] == pytest.approx(2.0)
    assert stats["std"] == pytest.approx((((3 - 7 / 3) ** 2 * 2 + (1 - 7 / 3) ** 2) / 3) ** 0.5)
    assert second_half_oscillation(history, "missing") == {}


def test_plot_training_curves_writes_one_png_for_several_runs(tmp_path):
    runs = {
        "learned": [{"step": i, "lambda": 1 + i % 3, "episode_cost": -i} for i in range(10)],
        "pid": [{"step": i, "lambda": 1.0, "episode_cost": -1.0} for i in range(10)],
    }
    path = plot_training_curves(runs, tmp_path / "curves.png", cost_limit=-2.0)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_plot_constraint_curves_writes_a_png_with_or_without_categories(tmp_path):
    history = [
        {"step": i, "lambda/harm": 1.0 + i, "lambda/length": 0.5, "episode_cost/harm": -i,
         "episode_cost/length": 30 - i, "oracle_harmful_ratio/Drugs": 0.5 / (1 + i)}
        for i in range(5)
    ]  # fmt: skip
    limits = {"harm": -2.0, "length": 24.0}
    path = plot_constraint_curves(history, limits, tmp_path / "with.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    bare = [{k: v for k, v in row.items() if "oracle" not in k} for row in history]
    assert plot_constraint_curves(bare, limits, tmp_path / "without.png").is_file()
