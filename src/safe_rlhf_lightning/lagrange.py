"""λ schedules of PPO-Lagrangian, the choices of the Hydra ``lambda_schedule`` group.

One interface for the four ways PPO-Lagrangian can weigh cost against reward, so that plain PPO,
reward shaping and the Lagrangian are one stage module with a config choice:

- ``learned``: dual ascent on log λ, the paper's method (upstream safe-rlhf's rule);
- ``pid``: the PID Lagrangian of Stooke, Achiam & Abbeel (ICML 2020);
- ``fixed``: reward shaping R - ν·C with a constant ν (the paper's ablation);
- ``none``: plain PPO on the reward.

Two-stream schedules (``learned``, ``pid``) train reward and cost critics and mix the advantages
as (A_R - λ·A_C) / (1 + λ) with λ = ``lambda_value``; one-stream schedules train one critic on
``shaped_score``. Cost C > 0 means unsafe; the constraint is E[C] <= cost_limit.

``update`` turns a list of costs into Python floats (one host sync per PPO step). Under DDP, pass
the end costs gathered from all ranks so that every rank computes the same λ.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import Any

import torch
from torch import Tensor

from .functional.lagrange import PIDStep, lagrangian_loss, pid_lambda


def _require(ok: bool, option: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"lambda_schedule.{option} must be {rule}, got {value!r}")


def _require_common(cost_limit: float, init: float, max: float | None, update_delay: int) -> None:
    """Checks shared by the two-stream schedules (``init`` itself is checked by each)."""
    _require(math.isfinite(cost_limit), "cost_limit", "finite", cost_limit)
    _require(max is None or max >= init, "max", f"None or >= init ({init})", max)
    ok = isinstance(update_delay, int) and update_delay >= 0
    _require(ok, "update_delay", "an integer >= 0", update_delay)


class LambdaSchedule(ABC):
    """A Lagrange multiplier λ and the window of recent episode (end) costs it is driven by."""

    two_streams: bool

    def __init__(self, window: int) -> None:
        _require(isinstance(window, int) and window >= 1, "window", "an integer >= 1", window)
        self.episode_costs: deque[float] = deque(maxlen=window)

    @property
    @abstractmethod
    def lambda_value(self) -> float:
        """The current multiplier λ >= 0."""

    def shaped_score(self, reward: Tensor, cost: Tensor) -> Tensor:
        """(B,) end reward and cost -> (B,) end score of a one-stream schedule."""
        raise RuntimeError(
            f"{type(self).__name__} is a two-stream schedule: mix the reward and cost "
            "advantages with lambda_value instead of shaping the score."
        )

    @abstractmethod
    def update(self, episode_costs: Tensor, step: int) -> dict[str, float]:
        """Record one rollout's (B,) end costs and update λ; returns stats for logging.

        Called once per PPO step; ``step`` is the 0-based PPO step index.
        """

    def state_dict(self) -> dict[str, Any]:
        return {"episode_costs": list(self.episode_costs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.episode_costs.clear()
        self.episode_costs.extend(state["episode_costs"])

    def _record(self, episode_costs: Tensor) -> float:
        """Append the costs to the window; returns the window mean (0.0 while empty)."""
        costs = episode_costs.detach().flatten().tolist()
        bad = [c for c in costs if not math.isfinite(c)]
        if bad:  # one NaN would make λ NaN for the rest of the run
            raise ValueError(f"episode_costs must be finite, got {len(bad)} values like {bad[0]}")
        self.episode_costs.extend(costs)
        if not self.episode_costs:
            return 0.0
        return math.fsum(self.episode_costs) / len(self.episode_costs)


class LearnedLambda(LambdaSchedule):
    """Dual ascent on log λ (Safe RLHF, arXiv 2310.12773, Section 3.3), upstream's exact rule.

    As in PKU-Alignment/safe-rlhf ``safe_rlhf/algorithms/ppo_lag/trainer.py``: log λ is a
    parameter trained by ``torch.optim.SGD([log_lambda], lr)`` on
    ``functional.lagrange.lagrangian_loss`` of the mean of a window of recent end costs, i.e.
    ``log λ ← log λ + lr·(J_C - cost_limit)·λ``, then clamped to log λ <= log(max). So λ stays in
    (0, max]; with slack it decays only like 1/t (the step shrinks with λ), never to 0.

    Args:
        cost_limit: d in E[C] <= d, in cost units.
        init: initial λ, > 0 (upstream ``lambda_init``, paper 1.0).
        lr: SGD learning rate on log λ, > 0 (upstream ``lambda_lr``, paper 0.1).
        max: upper bound on λ, or None for unbounded (upstream ``lambda_max``, paper 5.0).
        update_delay: λ is held for PPO steps 0..update_delay-1 (upstream
            ``lambda_update_delay_steps``, paper 0).
        window: number of most recent per-sample end costs averaged into J_C (upstream
            ``episode_cost_window_size``, paper 128).
    """

    two_streams = True

    def __init__(
        self,
        cost_limit: float,
        init: float = 1.0,
        lr: float = 0.1,
        max: float | None = 5.0,  # the config key lambda_schedule.max
        update_delay: int = 0,
        window: int = 128,
    ) -> None:
        super().__init__(window)
        _require(init > 0, "init", "> 0", init)
        _require(lr > 0, "lr", "> 0", lr)
        _require_common(cost_limit, init, max, update_delay)
        self.cost_limit = float(cost_limit)
        self.lambda_max = None if max is None else float(max)
        self.update_delay = update_delay
        # float64 on CPU: a scalar, so exact and deterministic; independent of the model's device.
        self.log_lambda = torch.nn.Parameter(torch.tensor(math.log(init), dtype=torch.float64))
        self.optimizer = torch.optim.SGD([self.log_lambda], lr=lr)

    @property
    def lambda_value(self) -> float:
        log_lambda = self.log_lambda.item()
        # exp(log(max)) rounds to either side of max; at the bound, report max itself.
        if self.lambda_max is not None and log_lambda >= math.log(self.lambda_max):
            return self.lambda_max
        return math.exp(log_lambda)

    def update(self, episode_costs: Tensor, step: int) -> dict[str, float]:
        episode_cost = self._record(episode_costs)
        # Robust to being called under no_grad / inference_mode in the training step.
        with torch.inference_mode(False), torch.enable_grad():
            cost_tensor = torch.tensor(episode_cost, dtype=torch.float64)
            loss = lagrangian_loss(self.log_lambda, cost_tensor, self.cost_limit)
            if step >= self.update_delay and self.episode_costs:
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                if self.lambda_max is not None:
                    with torch.no_grad():
                        self.log_lambda.clamp_(max=math.log(self.lambda_max))
        stats = {"lambda": self.lambda_value, "episode_cost": episode_cost}
        return {**stats, "lambda_loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_lambda": self.log_lambda.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_lambda.copy_(state["log_lambda"])
        self.optimizer.load_state_dict(state["optimizer"])


class PIDLambda(LambdaSchedule):
    """PID Lagrangian (Stooke, Achiam & Abbeel, "Responsive Safety in Reinforcement Learning by
    PID Lagrangian Methods", ICML 2020, Algorithm 2); see ``functional.lagrange.pid_lambda``.

    The integral starts at init / ki, so λ starts at ``init`` like the learned schedule.

    Default gains, for end costs of order 1 (λ per cost unit): ki = 0.1 raises λ by 0.1 per PPO
    step of a unit violation, about upstream's learned rate near λ = 1 (lr·Δ·λ = 0.1), but
    additively, so it neither collapses with slack nor speeds up near max; kp = 0.5 answers a
    violation at once instead of after the integral builds up, and kd = 0.5 adds a push while the
    cost is rising (one-sided). With a fixed gain (the learned rule's grows like λ²) the loop
    stays damped when the window or the policy delays the cost's response to λ.

    Args:
        cost_limit: d in E[C] <= d, in cost units.
        kp, ki, kd: proportional, integral and derivative gains, >= 0.
        init: initial λ, >= 0 and <= max.
        max: upper bound on λ (also bounds the integral, anti-windup), or None for unbounded.
        update_delay: λ and the controller state are held for PPO steps 0..update_delay-1.
        window: number of most recent per-sample end costs averaged into J_C.
        alpha_p, alpha_d: EMA factors in [0, 1) smoothing the P and D inputs (0: none). On the
            embedded benchmark smoothing (0.9) added lag and made λ swing more, not less (λ's
            std over the second half of 150 steps: 0.28 smoothed vs 0.18 unsmoothed).

    Measured on the embedded benchmark (cost limit -2, 150 steps): PID holds the mean episode
    cost at the limit (-2.08 over the second half, above it on 41% of the steps), so λ keeps
    being driven to 0, where the policy relearns harm within a few steps, and back up; learned
    dual ascent lags (its step scales with λ², λ decays smoothly to 0.13 and the cost stays at
    -2.47), so over that horizon it oscillates less (λ std 0.03) and leaves more slack.
    """

    two_streams = True

    def __init__(
        self,
        cost_limit: float,
        kp: float = 0.5,
        ki: float = 0.1,
        kd: float = 0.5,
        init: float = 1.0,
        max: float | None = 5.0,  # the config key lambda_schedule.max
        update_delay: int = 0,
        window: int = 128,
        alpha_p: float = 0.0,
        alpha_d: float = 0.0,
    ) -> None:
        super().__init__(window)
        self.gains = {"kp": kp, "ki": ki, "kd": kd, "alpha_p": alpha_p, "alpha_d": alpha_d}
        for option, value in self.gains.items():
            ok = 0 <= value < 1 if option.startswith("alpha") else value >= 0
            _require(ok, option, "in [0, 1)" if option.startswith("alpha") else ">= 0", value)
        _require(init >= 0, "init", ">= 0", init)
        _require_common(cost_limit, init, max, update_delay)
        self.cost_limit = float(cost_limit)
        self.lambda_max = None if max is None else float(max)
        self.update_delay = update_delay
        integral = init / ki if ki > 0 else 0.0
        # The controller state and the last (P, I, D) terms, as one PIDStep.
        self.state = PIDStep(float(init), integral, None, None, 0.0, ki * integral, 0.0)

    @property
    def lambda_value(self) -> float:
        return self.state.lambda_value

    def update(self, episode_costs: Tensor, step: int) -> dict[str, float]:
        episode_cost = self._record(episode_costs)
        if step >= self.update_delay and self.episode_costs:
            s = self.state
            self.state = pid_lambda(
                episode_cost,
                self.cost_limit,
                s.integral,
                s.smoothed_delta,
                s.smoothed_cost,
                **self.gains,
                lambda_max=self.lambda_max,
            )
        s = self.state
        return {
            "lambda": s.lambda_value,
            "episode_cost": episode_cost,
            "pid_p": s.p_term,
            "pid_i": s.i_term,
            "pid_d": s.d_term,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pid": self.state._asdict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.state = PIDStep(**state["pid"])


class FixedLambda(LambdaSchedule):
    """Reward shaping with a constant weight: end score R - ν·C (the paper's ablation).

    Args:
        nu: the weight ν >= 0 on the cost.
        window: number of recent end costs averaged for the logged ``episode_cost``.
    """

    two_streams = False

    def __init__(self, nu: float, window: int = 128) -> None:
        super().__init__(window)
        _require(math.isfinite(nu) and nu >= 0, "nu", "finite and >= 0", nu)
        self.nu = float(nu)

    @property
    def lambda_value(self) -> float:
        return self.nu

    def shaped_score(self, reward: Tensor, cost: Tensor) -> Tensor:
        return reward - self.nu * cost

    def update(self, episode_costs: Tensor, step: int) -> dict[str, float]:
        return {"lambda": self.nu, "episode_cost": self._record(episode_costs)}


class NoLambda(LambdaSchedule):
    """Plain PPO on the reward; the cost is only recorded for logging.

    Args:
        window: number of recent end costs averaged for the logged ``episode_cost``.
    """

    two_streams = False

    def __init__(self, window: int = 128) -> None:
        super().__init__(window)

    @property
    def lambda_value(self) -> float:
        return 0.0

    def shaped_score(self, reward: Tensor, cost: Tensor) -> Tensor:
        return reward

    def update(self, episode_costs: Tensor, step: int) -> dict[str, float]:
        return {"lambda": 0.0, "episode_cost": self._record(episode_costs)}
