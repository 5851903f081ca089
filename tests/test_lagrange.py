"""λ schedules: direction and bounds of λ, update delay, the cost window, exact resume."""

import io
import math
import statistics

import pytest
import torch
from hydra.errors import ConfigCompositionException

from safe_rlhf_lightning.cli.schedules import build_schedule
from safe_rlhf_lightning.config import ConfigError
from safe_rlhf_lightning.lagrange import (
    FixedLambda,
    LambdaSchedule,
    LearnedLambda,
    NoLambda,
    PIDLambda,
)
from tests.conftest import compose_run_config


def costs(value: float, n: int = 4) -> torch.Tensor:
    """A rollout of ``n`` end costs all equal to ``value``, shape (n,)."""
    return torch.full((n,), value, dtype=torch.float64)


def trajectory(schedule: LambdaSchedule, values: list[float], first_step: int = 0) -> list[float]:
    """λ after each update with a rollout of constant cost ``values[t]``."""
    out = []
    for t, value in enumerate(values):
        schedule.update(costs(value), first_step + t)
        out.append(schedule.lambda_value)
    return out


def round_trip(state: dict) -> dict:
    """Through torch.save / torch.load(weights_only=True), as a Lightning checkpoint would be."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---------------------------------------------------------------------------------------------
# LearnedLambda (upstream's rule)
# ---------------------------------------------------------------------------------------------


def test_learned_lambda_rises_above_the_limit_and_falls_below():
    rising = trajectory(LearnedLambda(cost_limit=0.0, max=None), [0.5] * 10)
    falling = trajectory(LearnedLambda(cost_limit=0.0), [-0.5] * 10)
    assert all(b > a for a, b in zip([1.0, *rising], rising, strict=False))
    assert all(b < a for a, b in zip([1.0, *falling], falling, strict=False))


def test_learned_lambda_hits_max_exactly_with_violations_and_stays_positive_with_slack():
    schedule = LearnedLambda(cost_limit=0.0, init=1.0, lr=0.1, max=5.0)
    violating = trajectory(schedule, [100.0] * 200)
    assert all(0.0 < lam <= 5.0 for lam in violating)
    assert violating[-1] == 5.0

    slack = trajectory(schedule, [-100.0] * 200, first_step=200)
    assert all(0.0 < lam <= 5.0 for lam in slack)
    assert slack[-1] < 1e-2  # decays like 1/t once the window mean is below the limit


def test_learned_lambda_step_matches_dual_ascent_on_the_window_mean():
    schedule = LearnedLambda(cost_limit=0.5, init=2.0, lr=0.1, max=None, window=4)
    schedule.update(torch.tensor([1.0, 2.0, 3.0]), step=0)  # window mean 2
    lambda_1 = math.exp(math.log(2.0) + 0.1 * (2.0 - 0.5) * 2.0)
    assert schedule.lambda_value == pytest.approx(lambda_1, rel=1e-12)

    stats = schedule.update(torch.tensor([4.0, 5.0, 6.0]), step=1)
    assert list(schedule.episode_costs) == [3.0, 4.0, 5.0, 6.0]  # only the last 4 costs
    assert stats["episode_cost"] == 4.5
    expected = math.exp(math.log(lambda_1) + 0.1 * (4.5 - 0.5) * lambda_1)
    assert stats["lambda"] == schedule.lambda_value == pytest.approx(expected, rel=1e-12)
    assert stats["lambda_loss"] == pytest.approx(-(4.5 - 0.5) * lambda_1, rel=1e-12)


def test_learned_lambda_waits_for_update_delay():
    schedule = LearnedLambda(cost_limit=0.0, init=1.0, update_delay=3)
    assert trajectory(schedule, [2.0, 2.0, 2.0]) == [1.0, 1.0, 1.0]
    assert len(schedule.episode_costs) == 12  # the window fills during the delay
    assert trajectory(schedule, [2.0], first_step=3)[0] > 1.0


def test_learned_lambda_updates_under_inference_mode():
    schedule = LearnedLambda(cost_limit=0.0)
    with torch.inference_mode():
        schedule.update(costs(1.0), step=0)
    assert schedule.lambda_value > 1.0


def test_empty_rollout_leaves_lambda_and_logs_zero_cost():
    schedule = LearnedLambda(cost_limit=0.0)
    stats = schedule.update(torch.empty(0), step=0)
    assert stats["episode_cost"] == 0.0
    assert schedule.lambda_value == 1.0


def test_non_finite_cost_is_rejected():
    with pytest.raises(ValueError, match="episode_costs must be finite"):
        LearnedLambda(cost_limit=0.0).update(torch.tensor([0.0, math.nan]), step=0)


def test_learned_lambda_state_round_trip_resumes_exactly():
    schedule = LearnedLambda(cost_limit=0.0, window=8)
    # Momentum makes the optimizer state matter: it must travel with the state dict.
    schedule.optimizer.param_groups[0]["momentum"] = 0.9
    values = [1.5, -0.5, 2.0, 0.3, -1.0] * 6
    trajectory(schedule, values[:10])
    state = round_trip(schedule.state_dict())
    assert "momentum_buffer" in state["optimizer"]["state"][0]

    resumed = LearnedLambda(cost_limit=0.0, window=8)
    resumed.load_state_dict(state)
    assert resumed.optimizer.state_dict() == schedule.optimizer.state_dict()
    assert list(resumed.episode_costs) == list(schedule.episode_costs)
    assert trajectory(resumed, values[10:], 10) == trajectory(schedule, values[10:], 10)


# ---------------------------------------------------------------------------------------------
# PIDLambda
# ---------------------------------------------------------------------------------------------


def test_pid_lambda_starts_at_init_and_holds_at_the_limit():
    schedule = PIDLambda(cost_limit=0.5, init=1.5)
    assert schedule.lambda_value == 1.5
    stats = schedule.update(costs(0.5), step=0)  # Δ = 0: the integral alone keeps λ = init
    assert stats["lambda"] == pytest.approx(1.5)
    assert (stats["pid_p"], stats["pid_i"], stats["pid_d"]) == pytest.approx((0.0, 1.5, 0.0))


def test_pid_lambda_rises_with_violation_and_reaches_zero_with_slack():
    schedule = PIDLambda(cost_limit=0.0, max=5.0)
    violating = trajectory(schedule, [1.0] * 200)
    assert violating[0] > 1.0
    assert all(0.0 <= lam <= 5.0 for lam in violating)
    assert violating[-1] == 5.0

    slack = trajectory(schedule, [-1.0] * 200, first_step=200)
    assert all(lam >= 0.0 for lam in slack)
    first_zero = slack.index(0.0)
    assert first_zero < 100  # anti-windup: 200 steps at max did not pile up 200 steps of integral
    assert all(lam == 0.0 for lam in slack[first_zero:])


def test_pid_lambda_waits_for_update_delay():
    schedule = PIDLambda(cost_limit=0.0, update_delay=2)
    assert trajectory(schedule, [3.0, 3.0]) == [1.0, 1.0]
    assert trajectory(schedule, [3.0], first_step=2)[0] > 1.0


def test_pid_oscillates_less_than_learned_on_a_toy_plant():
    """Plant: cost = 1.5 - 0.5·λ_prev (noise-free), limit 0, so λ* = 3.

    With 8 samples per step the 128-sample window spans 16 steps, a delay in the loop. The
    learned rule's loop gain (lr·λ·0.5·λ ≈ 0.45 per step near λ* = 3) is too high for that delay
    and it cycles between its bounds; the PID's fixed gains (ki·0.5 = 0.05 per step) settle.
    """

    def run(schedule: LambdaSchedule) -> list[float]:
        lambdas = []
        for step in range(200):
            schedule.update(costs(1.5 - 0.5 * schedule.lambda_value, n=8), step)
            lambdas.append(schedule.lambda_value)
        return lambdas[100:]

    learned, pid = run(LearnedLambda(cost_limit=0.0)), run(PIDLambda(cost_limit=0.0))
    assert statistics.pstdev(pid) < 0.1 * statistics.pstdev(learned)
    assert statistics.mean(pid) == pytest.approx(3.0, abs=0.05)


def test_pid_lambda_state_round_trip_resumes_exactly():
    options = {"cost_limit": 0.2, "window": 8, "alpha_p": 0.5, "alpha_d": 0.5}
    schedule = PIDLambda(**options)
    values = [1.5, -0.5, 2.0, 0.3, -1.0] * 6
    trajectory(schedule, values[:10])
    resumed = PIDLambda(**options)
    resumed.load_state_dict(round_trip(schedule.state_dict()))
    assert resumed.state == schedule.state
    assert trajectory(resumed, values[10:], 10) == trajectory(schedule, values[10:], 10)


# ---------------------------------------------------------------------------------------------
# FixedLambda, NoLambda, the factory, validation
# ---------------------------------------------------------------------------------------------

REWARD = torch.tensor([1.0, -2.0, 0.5])
COST = torch.tensor([0.5, -1.0, 2.0])


def test_fixed_lambda_shapes_the_score_and_never_moves():
    schedule = FixedLambda(nu=2.0)
    assert not schedule.two_streams
    assert schedule.shaped_score(REWARD, COST).tolist() == [0.0, 0.0, -3.5]
    assert REWARD.tolist() == [1.0, -2.0, 0.5]  # inputs untouched
    assert schedule.update(torch.tensor([1.0, 3.0]), step=0) == {"lambda": 2.0, "episode_cost": 2.0}
    assert schedule.lambda_value == 2.0


def test_no_lambda_scores_reward_only():
    schedule = NoLambda()
    assert not schedule.two_streams
    assert schedule.lambda_value == 0.0
    assert schedule.shaped_score(REWARD, COST).tolist() == REWARD.tolist()
    assert schedule.update(torch.tensor([1.0, 3.0]), step=0) == {"lambda": 0.0, "episode_cost": 2.0}


@pytest.mark.parametrize("cls", [LearnedLambda, PIDLambda])
def test_two_stream_schedules_do_not_shape_scores(cls):
    schedule = cls(cost_limit=0.0)
    assert schedule.two_streams
    with pytest.raises(RuntimeError, match="two-stream"):
        schedule.shaped_score(REWARD, COST)


@pytest.mark.parametrize(
    ("name", "options", "cls", "lambda_value"),
    [
        ("learned", ["lambda_schedule.init=2.0"], LearnedLambda, 2.0),
        ("pid", ["lambda_schedule.init=0.5", "lambda_schedule.kd=0.0"], PIDLambda, 0.5),
        ("fixed", ["lambda_schedule.nu=1.5"], FixedLambda, 1.5),
        ("none", [], NoLambda, 0.0),
    ],
)
def test_build_lambda_schedule(name, options, cls, lambda_value, tmp_path):
    """Each option of the ``lambda_schedule`` group, built the one way: Hydra's instantiate."""
    cfg = compose_run_config(["stage=ppo_lag", f"lambda_schedule={name}", *options], tmp_path)
    schedule = build_schedule(cfg)
    assert type(schedule) is cls
    assert schedule.lambda_value == lambda_value


def test_build_lambda_schedule_names_the_key_on_errors(tmp_path):
    with pytest.raises(ConfigCompositionException, match=r"lambda_schedule.*lagrange"):
        compose_run_config(["stage=ppo_lag", "lambda_schedule=lagrange"], tmp_path)
    cfg = compose_run_config(
        ["stage=ppo_lag", "lambda_schedule=pid", "+lambda_schedule.lr=0.1"], tmp_path
    )
    with pytest.raises(ConfigError, match=r"config key 'lambda_schedule'.*\blr\b"):
        build_schedule(cfg)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LearnedLambda(0.0, init=0), "lambda_schedule.init must be > 0, got 0"),
        (lambda: LearnedLambda(0.0, lr=-1.0), "lambda_schedule.lr must be > 0, got -1.0"),
        (lambda: LearnedLambda(0.0, init=6.0), "lambda_schedule.max must be None or >= init"),
        (lambda: LearnedLambda(0.0, update_delay=-1), "lambda_schedule.update_delay must be"),
        (lambda: LearnedLambda(math.nan), "lambda_schedule.cost_limit must be finite"),
        (lambda: PIDLambda(0.0, window=0), "lambda_schedule.window must be an integer >= 1"),
        (lambda: PIDLambda(0.0, ki=-0.1), "lambda_schedule.ki must be >= 0, got -0.1"),
        (lambda: PIDLambda(0.0, alpha_d=1.0), r"lambda_schedule.alpha_d must be in \[0, 1\)"),
        (lambda: FixedLambda(-1.0), "lambda_schedule.nu must be finite and >= 0, got -1.0"),
    ],
)
def test_constructors_reject_bad_options_naming_them(build, message):
    with pytest.raises(ValueError, match=message):
        build()
