"""λ update rules of PPO-Lagrangian: the learned dual objective and one PID step.

Conventions (DESIGN.md): cost C > 0 means unsafe; the constraint is E[C] <= cost_limit; the
actor's advantage is (A_R - λ·A_C) / (1 + λ). The episode cost J_C given to these rules is
already averaged (over the schedule's window of recent end costs), so it is a scalar.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


def lagrangian_loss(log_lambda: Tensor, episode_cost: Tensor, cost_limit: float) -> Tensor:
    """Dual objective of upstream safe-rlhf, minimized over log λ.

    ``-(J_C - d) · exp(log λ)`` with J_C = ``episode_cost`` (detached) and d = ``cost_limit``, as
    in PKU-Alignment/safe-rlhf ``safe_rlhf/algorithms/ppo_lag/trainer.py`` (``rl_step``).

    Its gradient is ∂/∂log λ = -(J_C - d)·λ, so one SGD step with learning rate lr gives
    ``log λ ← log λ + lr·(J_C - d)·λ``: λ grows while the constraint is violated (J_C > d) and
    shrinks while it has slack, multiplicatively, so it stays > 0.

    Args:
        log_lambda: 0-d tensor, log of the Lagrange multiplier (requires grad).
        episode_cost: 0-d tensor, mean end cost J_C (cost units); no gradient flows into it.
        cost_limit: the limit d, in cost units.

    Returns:
        0-d tensor, the loss to backpropagate into ``log_lambda``.
    """
    return -(episode_cost.detach() - cost_limit) * log_lambda.exp()


class PIDStep(NamedTuple):
    """Result of one :func:`pid_lambda` step: the new λ, the state to carry, the terms to log."""

    lambda_value: float  # λ >= 0 (<= lambda_max when given)
    integral: float  # I >= 0, in cost units (the I term is ki·I)
    smoothed_delta: float | None  # EMA of Δ = J_C - d feeding the P term (None: no step yet)
    smoothed_cost: float | None  # EMA of J_C feeding the D term, the next step's J_C,prev
    p_term: float  # kp·Δ (smoothed)
    i_term: float  # ki·I
    d_term: float  # kd·max(0, J_C - J_C,prev) (smoothed)


def pid_lambda(
    cost: float,
    cost_limit: float,
    integral: float,
    smoothed_delta: float | None,
    smoothed_cost: float | None,
    kp: float,
    ki: float,
    kd: float,
    alpha_p: float = 0.0,
    alpha_d: float = 0.0,
    lambda_max: float | None = None,
) -> PIDStep:
    """One step of the PID Lagrangian (Stooke, Achiam & Abbeel, ICML 2020, Algorithm 2).

    ::

        Δ = J_C - d
        I ← max(0, I + Δ)
        λ = max(0, kp·Δ + ki·I + kd·max(0, J_C - J_C,prev))

    As in the authors' implementation (rlpyt ``rlpyt/projects/safe/cppo_pid.py``, options
    ``pid_delta_p_ema_alpha`` and ``pid_delta_d_ema_alpha``), the P and D inputs may be smoothed
    by exponential moving averages: Δ̄ ← α_p·Δ̄ + (1 - α_p)·Δ for the P term and
    J̄ ← α_d·J̄ + (1 - α_d)·J_C for the D term (α = 0: no smoothing). The D term compares with
    the previous step only (rlpyt's ``pid_d_delay`` = 1).

    Deliberate deviations from Algorithm 2, both marked by arguments:
    - Algorithm 2 starts from J_C,prev = 0, which kicks the D term on the first step whenever the
      cost is positive. Here ``smoothed_cost=None`` (and ``smoothed_delta=None``) mean "first
      step": the EMAs start at the current values and the D term is 0.
    - With ``lambda_max``, λ is clipped to [0, lambda_max] and, when ki > 0, the integral to
      [0, lambda_max / ki] (anti-windup: a long violation while λ sits at its bound does not
      build up an integral that then needs as many steps of slack to unwind).

    Args:
        cost: J_C, the current (windowed mean) episode cost, in cost units.
        cost_limit: d, in cost units.
        integral: I from the previous step (0 or the initial value at the start).
        smoothed_delta, smoothed_cost: the EMA states from the previous step, or None at first.
        kp, ki, kd: the gains, >= 0, in λ per cost unit.
        alpha_p, alpha_d: EMA factors in [0, 1).
        lambda_max: upper bound on λ, or None for none.
    """
    delta = cost - cost_limit
    integral = max(0.0, integral + delta)
    if lambda_max is not None and ki > 0:
        integral = min(integral, lambda_max / ki)
    if smoothed_delta is None:
        smoothed_delta = delta
    else:
        smoothed_delta = alpha_p * smoothed_delta + (1.0 - alpha_p) * delta
    if smoothed_cost is None:
        new_smoothed_cost, derivative = cost, 0.0
    else:
        new_smoothed_cost = alpha_d * smoothed_cost + (1.0 - alpha_d) * cost
        derivative = max(0.0, new_smoothed_cost - smoothed_cost)
    p_term, i_term, d_term = kp * smoothed_delta, ki * integral, kd * derivative
    lambda_value = max(0.0, p_term + i_term + d_term)
    if lambda_max is not None:
        lambda_value = min(lambda_value, lambda_max)
    return PIDStep(
        lambda_value, integral, smoothed_delta, new_smoothed_cost, p_term, i_term, d_term
    )
