"""Constrained DPO (Liu et al. 2024, C-DPO): DPO on the policy's own samples, labelled by the
Lagrangian reward R - λ·C of the trained reward and cost models, with λ moved by the same
schedules as PPO-Lagrangian (``lagrange.py``) on the samples' costs. One ``training_step`` is
one iteration: sample, score, λ update, relabel, DPO steps."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import pytorch_lightning as pl
import torch
from torch import Tensor
from transformers import PreTrainedModel

from ..config import DEFAULT_NAME as DEFAULT_CONSTRAINT
from ..config import CDPOStageConfig
from ..distributed import clip_per_model
from ..functional import best_and_worst, constrained_preference, masked_sum
from ..lagrange import LambdaSchedule
from ..models import ScoreModel
from ..rollout import Retokenizer, end_score, response_logprobs, sample, sampling_options
from ..types import PromptBatch
from . import ppo_lag_checkpoint
from .dpo import preference_loss
from .guards import FiniteGuard, NonFiniteError, nonfinite_names
from .optim import configure_adamw
from .ppo_lag_constraints import Constraint


class PolicyUpdate(NamedTuple):
    """How the policy learns from its samples, recorded in checkpoints (where PPO records its
    advantage estimator) so that a PPO checkpoint is not resumed as a C-DPO run or back."""

    name: str = "cdpo"


class Pairs(NamedTuple):
    """One iteration's samples and the pairs C-DPO trains on."""

    input_ids: Tensor  # (N, P + T) the chosen responses' rows, then the rejected ones' (N = 2M)
    attention_mask: Tensor  # (N, P + T) bool
    response_mask: Tensor  # (N, T) bool
    ref_logprobs: Tensor  # (N,) summed log-probs of the responses under the reference
    margin: Tensor  # (M,) (R - λ·C) of the chosen minus that of the rejected, > tie_tolerance


class CDPOModule(pl.LightningModule):
    """Manual optimization; ``max_steps`` iterations of ``config.update_epochs`` updates.

    Args:
        policy: the causal LM trained (from the SFT policy).
        reference: π_ref of DPO's implicit reward, frozen and left out of checkpoints.
        reward_model, cost_model: the trained R and C, frozen; they label the samples.
        schedule: the ``lambda_schedule`` group's λ (learned, pid: dual ascent on the samples'
            mean cost against ``cost_limit``; fixed: ν; none: 0, DPO on R alone).
        config: every hyperparameter (``CDPOStageConfig``, documented there).
        eos_token_id, pad_token_id: of the policy's tokenizer.
        reward_retokenizer, cost_retokenizer: when R or C use another tokenizer.
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        reference: PreTrainedModel,
        reward_model: ScoreModel,
        cost_model: ScoreModel,
        schedule: LambdaSchedule,
        config: CDPOStageConfig,
        *,
        eos_token_id: int,
        pad_token_id: int,
        reward_retokenizer: Retokenizer | None = None,
        cost_retokenizer: Retokenizer | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints leave out the frozen models' weights
        self.policy = policy
        self.reference, self.reward_model, self.cost_model = reference, reward_model, cost_model
        for name in self.frozen_names():
            getattr(self, name).eval().requires_grad_(False)
        self.schedule, self.config = schedule, config
        self.advantage = PolicyUpdate()
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.reward_retokenizer, self.cost_retokenizer = reward_retokenizer, cost_retokenizer
        self.sampling = sampling_options(config)
        self.history: list[dict[str, float]] = []
        self.iteration = 0  # iterations done (saved in checkpoints)
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)

    @property
    def ppo_step(self) -> int:
        """The iteration count under the name PPO's checkpoint code and callback read."""
        return self.iteration

    @ppo_step.setter
    def ppo_step(self, value: int) -> None:
        self.iteration = value

    def frozen_names(self) -> tuple[str, ...]:
        """The frozen models: left out of checkpoints, never trained."""
        return ("reference", "reward_model", "cost_model")

    @property
    def constraints(self) -> list[Constraint]:
        """The one constraint E[C] <= d, as PPO-Lagrangian's checkpoint code reads it."""
        return [Constraint(DEFAULT_CONSTRAINT, self.schedule)]

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_names():  # Lightning sets train mode on every submodule
            getattr(self, name).eval()
        return self

    def training_step(self, prompts: PromptBatch, batch_idx: int) -> None:
        step, started = self.iteration, time.perf_counter()
        # 1. Samples of the current policy, scored by R and C.
        ids, mask, response_mask, reward, cost = self.make_samples(prompts)
        if not self.guard(step, "samples", reward=reward, cost=cost):
            self._end_iteration()
            return
        # 2. λ on the samples' costs of every rank, before it labels them (PPO's order).
        schedule_stats = self.schedule.update(self.all_gather(cost).flatten(), step=step)
        if nonfinite_names({"λ": self.schedule.lambda_value}):
            raise NonFiniteError(f"λ became {self.schedule.lambda_value} at step {step}")
        # 3. Each prompt's best and worst sample under R - λ·C; ties give no pair.
        pairs = self.make_pairs(ids, mask, response_mask, reward, cost)
        # 4. DPO steps on the pairs against the frozen reference.
        update_stats = self.dpo_updates(pairs) if pairs.margin.numel() else {}
        # 5. Logging.
        stats = {
            "reward": self.all_gather(reward).mean().item(),
            "cost": self.all_gather(cost).mean().item(),
            "lambda": self.schedule.lambda_value,
            **{k: v for k, v in schedule_stats.items() if k != "lambda"},
            "pairs": float(pairs.margin.numel()),
            "label_margin": pairs.margin.mean().item() if pairs.margin.numel() else 0.0,
            "mean_generated_length": response_mask.sum(-1).float().mean().item(),
            **update_stats,
            "seconds_per_step": time.perf_counter() - started,
        }
        shown = ("reward", "cost", "lambda")
        self.log_dict({f"train/{k}": stats[k] for k in shown}, on_step=True, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in stats.items() if k not in shown}, on_step=True)
        self.history.append({"step": float(step), **stats})
        self._end_iteration()

    def _end_iteration(self) -> None:
        self.iteration += 1
        if self.iteration >= self.config.max_steps:
            self.trainer.should_stop = True

    @torch.no_grad()
    def make_samples(self, prompts: PromptBatch) -> tuple[Tensor, ...]:
        """(B·k, P + T) ids and mask, (B·k, T) response mask, (B·k,) R and (B·k,) C."""
        was_training = self.training
        self.eval()
        try:
            ids, mask, response_mask = sample(
                self.policy,
                prompts,
                self.sampling,
                eos_token_id=self.eos_token_id,
                pad_token_id=self.pad_token_id,
            )
            reward = end_score(self.reward_model, ids, mask, self.reward_retokenizer)
            cost = end_score(self.cost_model, ids, mask, self.cost_retokenizer)
            return ids, mask, response_mask, reward, cost
        finally:
            self.train(was_training)

    @torch.no_grad()
    def make_pairs(
        self, ids: Tensor, mask: Tensor, response_mask: Tensor, reward: Tensor, cost: Tensor
    ) -> Pairs:
        lam = self.schedule.lambda_value
        best, worst = best_and_worst(reward - lam * cost, self.config.num_return_sequences)
        labels = constrained_preference(
            reward[best],
            cost[best],
            reward[worst],
            cost[worst],
            lam,
            tie_tolerance=self.config.tie_tolerance,
        )
        keep = ~labels.tie  # the best is preferred wherever it is no tie
        rows = torch.cat([best[keep], worst[keep]])  # (2M,) chosen rows, then rejected rows
        pair_ids, pair_mask, pair_response = ids[rows], mask[rows], response_mask[rows]
        prompt_length = ids.shape[1] - response_mask.shape[1]
        ref = response_logprobs(self.reference, pair_ids, pair_mask, prompt_length)
        ref_logprobs = masked_sum(ref, pair_response, dim=-1)
        return Pairs(pair_ids, pair_mask, pair_response, ref_logprobs, labels.margin[keep])

    def dpo_updates(self, pairs: Pairs) -> dict[str, float]:
        """``update_epochs`` AdamW steps, each on all the pairs; the stats of the last one."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        prompt_length = pairs.input_ids.shape[1] - pairs.response_mask.shape[1]
        stats: dict[str, Tensor] = {}
        for _ in range(self.config.update_epochs):
            token_logprobs = response_logprobs(
                self.policy, pairs.input_ids, pairs.attention_mask, prompt_length
            )
            logprobs = masked_sum(token_logprobs, pairs.response_mask, dim=-1)  # (2M,)
            loss, stats = preference_loss(
                *logprobs.chunk(2), *pairs.ref_logprobs.chunk(2), self.config
            )
            if not self.guard(self.iteration, "DPO loss", loss=loss):
                continue
            optimizer.zero_grad()
            self.manual_backward(loss)
            strategy = self.trainer.strategy if self._trainer is not None else None
            norms = clip_per_model(strategy, {"policy": self.policy}, self.config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            stats = {**stats, **norms}
        return {key: float(value) for key, value in stats.items()}

    def configure_optimizers(self):
        return configure_adamw(self, self.policy)

    # PPO-Lagrangian's checkpoint contents serve as they are: the trained weights only, the λ
    # schedule, the history, the iteration count and every rank's random generators.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ppo_lag_checkpoint.pack(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ppo_lag_checkpoint.unpack(self, checkpoint, self._trainer)
