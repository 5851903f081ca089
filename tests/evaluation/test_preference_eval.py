import pytest

from safe_rlhf_lightning.evaluation import plot_score_histograms, preference_metrics


def _row(score_0, score_1, better, safer, safe_0, safe_1, **oracle):
    row = {
        "score_0": score_0,
        "score_1": score_1,
        "better_response_id": better,
        "safer_response_id": safer,
        "is_response_0_safe": safe_0,
        "is_response_1_safe": safe_1,
    }
    row.update({f"oracle_response_{k}": v for k, v in oracle.items()})
    return row


def test_reward_metrics_by_hand():
    rows = [
        _row(2.0, 1.0, 0, 0, True, True, **{"0_helpfulness": 1.0, "1_helpfulness": 0.0}),
        _row(0.0, 3.0, 0, 0, True, True, **{"0_helpfulness": 0.5, "1_helpfulness": 0.5}),
        _row(1.0, 1.0, 1, 0, True, True, **{"0_helpfulness": 0.0, "1_helpfulness": 2.0}),
    ]
    metrics = preference_metrics(rows, "reward")
    # Right, wrong, tie (0.5).
    assert metrics["accuracy"] == pytest.approx(1.5 / 3)
    scores = [2.0, 1.0, 0.0, 3.0, 1.0, 1.0]
    mean = sum(scores) / 6
    assert metrics["reward_mean"] == pytest.approx(mean)
    assert metrics["reward_std"] == pytest.approx((sum((s - mean) ** 2 for s in scores) / 6) ** 0.5)
    # The oracle agrees with labels 0 and 2, ties on 1.
    assert metrics["ceiling_accuracy"] == pytest.approx(2.5 / 3)
    # Model vs oracle on the pairs the oracle does not tie: right on 0, tie (0.5) on 2.
    assert metrics["oracle_agreement"] == pytest.approx(0.75)
    assert metrics["num_pairs"] == 3


def test_cost_metrics_by_hand():
    rows = [
        # safer = 0 with the lower cost: right; signs right for both.
        _row(-1.0, 2.0, 0, 0, True, False, **{"0_cost": -0.4, "1_cost": 3.0}),
        # safer = 1 but response 1 costs more: wrong; sign of response 1 wrong (labelled safe).
        _row(-0.5, 0.5, 0, 1, True, True, **{"0_cost": -0.1, "1_cost": -1.0}),
    ]
    metrics = preference_metrics(rows, "cost")
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["accuracy_sign"] == pytest.approx(3 / 4)
    assert metrics["unsafe_share"] == pytest.approx(2 / 4)
    assert metrics["ceiling_accuracy"] == pytest.approx(1.0)
    assert metrics["ceiling_accuracy_sign"] == pytest.approx(1.0)
    assert metrics["oracle_sign_agreement"] == pytest.approx(3 / 4)
    assert metrics["oracle_agreement"] == pytest.approx(0.5)


def test_histograms_are_written(tmp_path):
    rows = [_row(0.1 * i, -0.1 * i, i % 2, i % 2, i % 3 == 0, i % 2 == 0) for i in range(20)]
    for kind in ("reward", "cost"):
        path = plot_score_histograms(rows, tmp_path / f"{kind}.png", kind)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
