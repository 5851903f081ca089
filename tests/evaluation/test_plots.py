"""Policy-comparison figures are written as PNG files and leave no figure open."""

import pytest

from safe_rlhf_lightning.evaluation.plots import plot_policy_plane, plot_score_distributions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _open_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums()


def test_policy_plane_is_written(tmp_path):
    points = {"SFT": (0.40, 0.55), "PPO": (0.45, 0.70), "PPO-Lag": (0.10, 0.65)}
    plain = plot_policy_plane(points, tmp_path / "plane.png")
    arrows = plot_policy_plane(points, tmp_path / "arrows.png", reference="SFT", title="t")
    for path in (plain, arrows):
        data = path.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 5_000
    # The arrows change the picture.
    assert plain.read_bytes() != arrows.read_bytes()
    assert _open_figures() == []


def test_policy_plane_rejects_unknown_reference(tmp_path):
    with pytest.raises(ValueError, match="reference 'SFT' is not among the points"):
        plot_policy_plane({"PPO": (0.1, 0.2)}, tmp_path / "plane.png", reference="SFT")
    with pytest.raises(ValueError, match="no policies"):
        plot_policy_plane({}, tmp_path / "plane.png")
    assert not (tmp_path / "plane.png").exists()


def test_score_distributions_are_written(tmp_path):
    scores = {
        "SFT": [0.1 * i - 1.0 for i in range(30)],
        "PPO-Lag": [-0.05 * i for i in range(30)],
    }
    with_line = plot_score_distributions(
        scores, tmp_path / "cost.png", xlabel="cost", title="Cost of responses", threshold=0.0
    )
    without = plot_score_distributions(
        scores, tmp_path / "cost_plain.png", xlabel="cost", title="Cost of responses"
    )
    assert with_line.read_bytes()[:8] == PNG_MAGIC
    assert len(with_line.read_bytes()) > 5_000
    assert with_line.read_bytes() != without.read_bytes()
    assert _open_figures() == []
    with pytest.raises(ValueError, match="no scores"):
        plot_score_distributions({"SFT": []}, tmp_path / "empty.png", xlabel="x", title="t")
