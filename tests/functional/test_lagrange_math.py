"""λ update rules: the dual objective's gradient and SGD step, and PID steps, by hand."""

import math
import random

import pytest
import torch

from safe_rlhf_lightning.functional.lagrange import PIDStep, lagrangian_loss, pid_lambda

# (λ, J_C, d): a violation and a slack case.
HAND_PICKED = [(2.0, 0.7, 0.2), (0.5, -1.5, 0.0)]


@pytest.mark.parametrize(("lam", "episode_cost", "cost_limit"), HAND_PICKED)
def test_lagrangian_loss_gradient_is_minus_violation_times_lambda(lam, episode_cost, cost_limit):
    log_lambda = torch.tensor(math.log(lam), dtype=torch.float64, requires_grad=True)
    cost = torch.tensor(episode_cost, dtype=torch.float64, requires_grad=True)

    loss = lagrangian_loss(log_lambda, cost, cost_limit)
    loss.backward()

    assert loss.item() == pytest.approx(-(episode_cost - cost_limit) * lam, rel=1e-12)
    assert log_lambda.grad.item() == pytest.approx(-(episode_cost - cost_limit) * lam, rel=1e-12)
    assert cost.grad is None  # the episode cost is detached: λ's loss never trains the policy


@pytest.mark.parametrize(("lam", "episode_cost", "cost_limit"), HAND_PICKED)
def test_lagrangian_loss_sgd_step_is_dual_ascent(lam, episode_cost, cost_limit):
    lr = 0.1
    log_lambda = torch.nn.Parameter(torch.tensor(math.log(lam), dtype=torch.float64))
    optimizer = torch.optim.SGD([log_lambda], lr=lr)
    cost = torch.tensor(episode_cost, dtype=torch.float64)

    lagrangian_loss(log_lambda, cost, cost_limit).backward()
    optimizer.step()

    expected = math.log(lam) + lr * (episode_cost - cost_limit) * lam
    assert log_lambda.item() == pytest.approx(expected, rel=1e-12)
    assert cost.item() == episode_cost  # input untouched
    # λ moves up on a violation and down with slack.
    assert (log_lambda.item() > math.log(lam)) == (episode_cost > cost_limit)


def test_pid_lambda_three_steps_by_hand():
    gains = {"kp": 0.5, "ki": 0.1, "kd": 0.5}
    # Step 1, J = 3: Δ = 2, I = 2, P = 1.0, I term = 0.2, D = 0 (first step) -> λ = 1.2.
    s1 = pid_lambda(3.0, 1.0, 0.0, None, None, **gains)
    assert s1.lambda_value == pytest.approx(1.2)
    assert (s1.integral, s1.smoothed_delta, s1.smoothed_cost) == (2.0, 2.0, 3.0)
    assert (s1.p_term, s1.i_term, s1.d_term) == pytest.approx((1.0, 0.2, 0.0))
    # Step 2, J = 4: Δ = 3, I = 5, P = 1.5, I term = 0.5, D = 0.5·(4 - 3) = 0.5 -> λ = 2.5.
    s2 = pid_lambda(4.0, 1.0, s1.integral, s1.smoothed_delta, s1.smoothed_cost, **gains)
    assert s2.lambda_value == pytest.approx(2.5)
    assert s2.integral == 5.0
    assert (s2.p_term, s2.i_term, s2.d_term) == pytest.approx((1.5, 0.5, 0.5))
    # Step 3, J = 0: Δ = -1, I = 4, P = -0.5, I term = 0.4, D = 0.5·max(0, 0 - 4) = 0
    # -> P + I + D = -0.1, clipped to λ = 0.
    s3 = pid_lambda(0.0, 1.0, s2.integral, s2.smoothed_delta, s2.smoothed_cost, **gains)
    assert s3.lambda_value == 0.0
    assert s3.integral == 4.0
    assert (s3.p_term, s3.i_term, s3.d_term) == pytest.approx((-0.5, 0.4, 0.0))


def test_pid_lambda_ema_smoothing_by_hand():
    gains = {"kp": 0.5, "ki": 0.1, "kd": 0.5, "alpha_p": 0.5, "alpha_d": 0.5}
    s1 = pid_lambda(3.0, 1.0, 0.0, None, None, **gains)  # EMAs start at Δ = 2 and J = 3
    assert (s1.smoothed_delta, s1.smoothed_cost) == (2.0, 3.0)
    # J = 5: Δ = 4, Δ̄ = 0.5·2 + 0.5·4 = 3, J̄ = 0.5·3 + 0.5·5 = 4, D = 0.5·(4 - 3), I = 6
    # -> λ = 0.5·3 + 0.1·6 + 0.5 = 2.6.
    s2 = pid_lambda(5.0, 1.0, s1.integral, s1.smoothed_delta, s1.smoothed_cost, **gains)
    assert (s2.smoothed_delta, s2.smoothed_cost, s2.integral) == (3.0, 4.0, 6.0)
    assert s2.lambda_value == pytest.approx(2.6)


def test_pid_lambda_integral_and_lambda_never_negative_and_bounded():
    rng = random.Random(0)
    state = PIDStep(0.0, 0.0, None, None, 0.0, 0.0, 0.0)
    seen_zero = seen_max = False
    for _ in range(2000):
        cost = rng.uniform(-3.0, 3.0) + (2.0 if rng.random() < 0.3 else 0.0)
        state = pid_lambda(
            cost,
            0.5,
            state.integral,
            state.smoothed_delta,
            state.smoothed_cost,
            kp=0.5,
            ki=0.1,
            kd=0.5,
            alpha_p=0.3,
            alpha_d=0.3,
            lambda_max=2.0,
        )
        assert state.integral >= 0.0
        assert state.integral <= 2.0 / 0.1  # anti-windup: ki·I <= lambda_max
        assert 0.0 <= state.lambda_value <= 2.0
        seen_zero |= state.lambda_value == 0.0
        seen_max |= state.lambda_value == 2.0
    assert seen_zero and seen_max  # both bounds were exercised


def test_pid_lambda_hits_max_exactly_and_caps_the_integral():
    step = pid_lambda(100.0, 0.0, 0.0, None, None, kp=0.5, ki=0.1, kd=0.5, lambda_max=5.0)
    assert step.lambda_value == 5.0
    assert step.integral == pytest.approx(50.0)
    unbounded = pid_lambda(100.0, 0.0, 0.0, None, None, kp=0.5, ki=0.1, kd=0.5)
    assert unbounded.lambda_value == pytest.approx(60.0)  # 0.5·100 + 0.1·100
    assert unbounded.integral == 100.0
