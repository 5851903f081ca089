"""PPO-Lagrangian (Dai et al. 2023, Sec. 3.3): maximise E[R] subject to E[C] <= cost_limit.

One module serves every λ schedule (``lagrange.py``): ``learned`` (the paper's dual ascent) and
``pid`` train a reward and a cost critic and mix their advantages with λ; ``fixed`` (reward
shaping R − ν·C) and ``none`` (plain PPO on R) train one critic on one shaped score. And every
advantage estimator (``config.advantage``, computed by ``ppo_lag_advantages``): ``gae`` with
those critics, or ``grpo``/``dr_grpo``/``rloo``, group baselines without any critic.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from ..config import DEFAULT_NAME, AdvantageEstimator, GAEAdvantage, PPOLagStageConfig
from ..distributed import clip_per_model, rank_report, tensor_digest
from ..functional import clipped_value_loss, explained_variance, masked_mean, masked_sum, ptx_loss
from ..lagrange import LambdaSchedule
from ..models import ScoreModel
from ..rollout import (
    Retokenizer,
    Rollout,
    end_score,
    response_logprobs,
    response_values,
    sample,
    sampling_options,
)
from ..types import PromptBatch, SupervisedBatch
from . import ppo_lag_advantages, ppo_lag_checkpoint
from .guards import FiniteGuard
from .optim import configure_adamw, decay_parameter_groups
from .ppo_lag_constraints import (
    Constraint,
    check_models,
    constraint_stats,
    require_distinct_names,
    rollout_costs,
    sample_rows,
    shown_keys,
    update_multipliers,
)

GAE = GAEAdvantage()  # the default estimator: today's PPO-Lagrangian with critics

# What the observers receive every step: the decoded rollout and its scores.
RolloutObserver = Callable[[list[str], list[str]], dict[str, float]]


class PPOLagModule(pl.LightningModule):
    """The Safe RLHF fine-tuning stage, manual optimization; one ``training_step`` is one PPO step.

    Args:
        actor: the policy being trained (initialised from the SFT policy).
        reference: frozen copy of the initial policy, for the KL penalty.
        reward_model, cost_model: frozen R and C (C may be None for ``none``; its cost is then 0);
            with ``constraints``, a mapping from constraint name to its cost model (the same
            model may serve several constraints, one head each; rule scorers need none).
        reward_critic: V_R (or the only critic of one-stream schedules), initialised from R; or,
            with a score_dim of 1 + S, a shared critic: one backbone, V_R on head 0 and the S
            cost critics (one per two-stream constraint) on heads 1..S (one backbone pass instead
            of 1 + S, in the rollout and in every update). None with a critic-free ``advantage``
            estimator.
        cost_critic: V_C, initialised from C; None for one-stream schedules, a shared critic
            and critic-free estimators; with ``constraints``, a mapping from the name of each
            two-stream constraint to its critic.
        schedule: the λ schedule of the single constraint (None with ``constraints``).
        config: every hyperparameter (``PPOLagStageConfig``, documented there); the module stops
            after ``config.max_steps`` PPO steps.
        eos_token_id, pad_token_id: of the actor's tokenizer.
        advantage: the estimator of each stream's advantage (the ``advantage`` group; ``gae``
            by default, the only one that uses critics).
        reward_retokenizer, cost_retokenizer: when R or C use another tokenizer than the actor
            (with ``constraints``, each constraint holds its own).
        constraints: several constraints at once (``ppo_lag_constraints.Constraint``); None is
            the single constraint ``cost`` of ``cost_model``, ``cost_critic`` and ``schedule``.
            Its models are the module's ``<name>_model`` and ``<name>_critic``.
        decode: token ids → text, for the sample table and the observers.
        observer: called with (prompts, responses) of each rollout; returns extra metrics to log
            (the runner passes the benchmark's oracle here; training never sees it).
        sample_sink: called every ``config.log_samples_every`` steps with rows of sampled
            responses.
    """

    def __init__(
        self,
        actor: PreTrainedModel,
        reference: PreTrainedModel,
        reward_model: ScoreModel,
        cost_model: ScoreModel | Mapping[str, ScoreModel | None] | None,
        reward_critic: ScoreModel | None,
        cost_critic: ScoreModel | Mapping[str, ScoreModel | None] | None,
        schedule: LambdaSchedule | None,
        config: PPOLagStageConfig,
        *,
        eos_token_id: int,
        pad_token_id: int,
        advantage: AdvantageEstimator = GAE,
        reward_retokenizer: Retokenizer | None = None,
        cost_retokenizer: Retokenizer | None = None,
        decode: Callable[[Tensor], list[str]] | None = None,
        observer: RolloutObserver | None = None,
        sample_sink: Callable[[int, list[dict]], None] | None = None,
        constraints: Sequence[Constraint] | None = None,
    ) -> None:
        super().__init__()
        if constraints is None:  # today's single constraint
            limit = getattr(schedule, "cost_limit", None)
            constraints = [Constraint(DEFAULT_NAME, schedule, limit, retokenizer=cost_retokenizer)]
            cost_model, cost_critic = {DEFAULT_NAME: cost_model}, {DEFAULT_NAME: cost_critic}
        elif schedule is not None or cost_retokenizer is not None:
            raise ValueError("with constraints, each constraint holds its schedule and retokenizer")
        require_distinct_names(constraints)
        self.constraints = list(constraints)
        cost_models, cost_critics = dict(cost_model or {}), dict(cost_critic or {})
        self.shared_critic = check_models(
            self.constraints, advantage, cost_models, reward_critic, cost_critics
        )
        self.advantage = advantage
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints leave out the frozen models' weights
        self.actor, self.reference, self.reward_model = actor, reference, reward_model
        for constraint in self.constraints:  # cost_model for the single constraint, as ever
            setattr(self, f"{constraint.name}_model", cost_models.get(constraint.name))
        self.reward_critic = reward_critic
        for constraint in self.constraints:
            setattr(self, f"{constraint.name}_critic", cost_critics.get(constraint.name))
        for name in self.frozen_names():
            if (model := getattr(self, name)) is not None:
                model.eval().requires_grad_(False)
        self.config = config
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.eos_token_id, self.pad_token_id = eos_token_id, pad_token_id
        self.reward_retokenizer = reward_retokenizer
        self.sampling = sampling_options(config)
        self.decode, self.observer, self.sample_sink = decode, observer, sample_sink
        self.history: list[dict[str, float]] = []
        self.ppo_step = 0  # PPO steps done (saved in checkpoints)
        self.prompts_digest = ""  # of the prompt ids this rank trained on (see rank_state)
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)
        self.timings: dict[str, float] = {}

    # -- the models that learn, and those that never do --------------------------------------

    @property
    def schedule(self) -> LambdaSchedule:
        """The λ schedule of the (first) constraint."""
        return self.constraints[0].schedule

    @property
    def streams(self) -> list[Constraint]:
        """The constraints with a cost stream of their own (two-stream schedules), in order."""
        return [c for c in self.constraints if c.two_streams]

    def frozen_names(self) -> tuple[str, ...]:
        """The attributes of the frozen models: left out of checkpoints, never trained."""
        return ("reference", "reward_model", *(f"{c.name}_model" for c in self.constraints))

    def named_trained_models(self) -> dict[str, nn.Module]:
        models = {"actor": self.actor, "reward_critic": self.reward_critic}
        models |= {f"{c.name}_critic": getattr(self, f"{c.name}_critic") for c in self.constraints}
        return {name: model for name, model in models.items() if model is not None}

    def trained_models(self) -> list[nn.Module]:
        return list(self.named_trained_models().values())

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_names():  # Lightning switches every submodule to train mode
            if (model := getattr(self, name)) is not None:
                model.eval()
        return self

    # -- one PPO step ------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> None:
        prompts, ptx_batch = (
            (batch["prompt"], batch.get("ptx")) if isinstance(batch, dict) else (batch, None)
        )
        step = self.ppo_step
        started = time.perf_counter()
        self.prompts_digest = tensor_digest([(self.prompts_digest, prompts.input_ids)])
        # 1. Rollout: sample with the actor, score with every model (no gradient, eval mode).
        rollout = self.make_rollout(prompts)
        if not self.guard(
            step,
            "rollout",
            reward=rollout.reward,
            cost=rollout.cost,
            log_probabilities=rollout.logprobs,
            reward_values=rollout.reward_values,
            **self._cost_values_by_name(rollout),
        ):
            self._skip_step()
            return
        # 2. Each λ_k updated on its window of episode costs (before the advantages use it, as
        # upstream); every rank sees the costs of all ranks, so every λ_k stays identical.
        schedule_stats = update_multipliers(self.constraints, self.all_gather(rollout.cost), step)
        # 3. Each stream's advantage (KL shaping and GAE, or group baselines), then the actor's.
        targets = ppo_lag_advantages.estimate(
            self.advantage, rollout, self.constraints, self.config
        )
        # 4. K PPO epochs over minibatches: actor, critics (and PTX) in one update each.
        update_started = time.perf_counter()
        update_stats = self.ppo_epochs(rollout, targets, ptx_batch)
        self.timings["update_seconds"] = time.perf_counter() - update_started
        # 5. Logging.
        elapsed = time.perf_counter() - started
        stats = self.step_stats(rollout, targets, update_stats, schedule_stats, elapsed)
        self.observe(rollout, stats, step)
        shown = shown_keys(self.constraints)
        self.log_dict({f"train/{k}": stats[k] for k in shown}, on_step=True, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in stats.items() if k not in shown}, on_step=True)
        if self.guard.skipped:
            stats["skipped_batches"] = float(self.guard.skipped)
        self.history.append({"step": float(step), **stats})
        self._end_step()

    def _end_step(self) -> None:
        self.ppo_step += 1
        if self.ppo_step >= self.config.max_steps:
            self.trainer.should_stop = True

    def _skip_step(self) -> None:
        """A rollout with a non-finite score: no λ update, no PPO update; the step counts."""
        self.log("train/skipped_batches", float(self.guard.skipped), on_step=True)
        self._end_step()

    @torch.no_grad()
    def make_rollout(self, prompts: PromptBatch) -> Rollout:
        was_training = self.training
        self.eval()
        try:
            started = time.perf_counter()
            ids, mask, response_mask, *sampled_logprobs = sample(
                self.actor,
                prompts,
                self.sampling,
                eos_token_id=self.eos_token_id,
                pad_token_id=self.pad_token_id,
                return_logprobs=self.config.logprobs_from_generation,
            )
            sampled = time.perf_counter()
            prompt_length = ids.shape[1] - response_mask.shape[1]
            reward = end_score(self.reward_model, ids, mask, self.reward_retokenizer)
            models = {c.name: getattr(self, f"{c.name}_model") for c in self.constraints}
            cost = rollout_costs(self.constraints, models, ids, mask, response_mask, reward)
            logprobs = sampled_logprobs or [response_logprobs(self.actor, ids, mask, prompt_length)]
            reward_values, cost_values = (
                self.values(ids, mask, prompt_length) if self.advantage.critics else (None, None)
            )
            rollout = Rollout(
                input_ids=ids,
                attention_mask=mask,
                response_mask=response_mask,
                logprobs=logprobs[0],
                ref_logprobs=response_logprobs(self.reference, ids, mask, prompt_length),
                reward=reward,
                cost=cost,
                reward_values=reward_values,
                cost_values=cost_values,
            )
            self.timings["generation_seconds"] = sampled - started
            self.timings["scoring_seconds"] = time.perf_counter() - sampled
            return rollout
        finally:
            self.train(was_training)

    def _cost_values_by_name(self, rollout: Rollout) -> dict[str, Tensor]:
        """The rollout's values of each cost stream, by ``<name>_values`` (none without critics)."""
        values = rollout.cost_values or ()
        return {f"{c.name}_values": v for c, v in zip(self.streams, values, strict=bool(values))}

    def values(
        self, input_ids: Tensor, attention_mask: Tensor, prompt_length: int
    ) -> tuple[Tensor, tuple[Tensor, ...] | None]:
        """(B, T) reward values and the (B, T) values of each cost stream (``streams``, in
        order; None when there is none)."""
        reward_values = response_values(
            self.reward_critic, input_ids, attention_mask, prompt_length
        )
        streams = self.streams
        if self.shared_critic:
            cost_values = tuple(reward_values[..., 1 + s] for s in range(len(streams)))
            return reward_values[..., 0], cost_values or None
        cost_values = tuple(
            response_values(
                getattr(self, f"{c.name}_critic"), input_ids, attention_mask, prompt_length
            )[..., 0]
            for c in streams
        )
        return reward_values[..., 0], cost_values or None

    def ppo_epochs(
        self, rollout: Rollout, targets: dict[str, Tensor], ptx_batch: SupervisedBatch | None
    ) -> dict[str, float]:
        hp = self.config
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        size = rollout.input_ids.shape[0]
        chunks = math.ceil(size / hp.minibatch_size)
        sums: dict[str, Tensor] = {}  # detached tensors: one host sync per PPO step, not per update
        for _ in range(hp.update_epochs):
            order = torch.randperm(size, device=rollout.input_ids.device)
            for chunk, index in enumerate(order.tensor_split(chunks)):
                ptx = _rows(ptx_batch, chunk, chunks) if ptx_batch is not None else None
                loss, stats = self.minibatch_loss(rollout, targets, index, ptx)
                if not self.guard(self.ppo_step, "minibatch loss", loss=loss):
                    continue
                optimizer.zero_grad()
                self.manual_backward(loss)
                stats |= self.clip_gradients_per_model()
                optimizer.step()
                scheduler.step()
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + value / (hp.update_epochs * chunks)
        return {key: float(value) for key, value in sums.items()}

    def clip_gradients_per_model(self) -> dict[str, Tensor]:
        """Each trained model's gradient clipped to ``max_grad_norm`` on its own, as upstream;
        returns the norms before clipping (see :func:`distributed.clip_per_model`)."""
        strategy = self.trainer.strategy if self._trainer is not None else None
        models = self.named_trained_models()
        return clip_per_model(strategy, models, self.config.max_grad_norm)

    def minibatch_loss(
        self,
        rollout: Rollout,
        targets: dict[str, Tensor],
        index: Tensor,
        ptx: SupervisedBatch | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.config
        ids, mask = rollout.input_ids[index], rollout.attention_mask[index]
        logprobs = response_logprobs(self.actor, ids, mask, rollout.prompt_length)
        loss, stats = ppo_lag_advantages.actor_loss(
            self.advantage, logprobs, rollout, targets, index, hp
        )
        if self.advantage.critics:
            loss, stats = self.critic_losses(rollout, targets, index, loss, stats)
        if ptx is not None and hp.ptx_coef > 0:
            logits = self.actor(input_ids=ptx.input_ids, attention_mask=ptx.attention_mask).logits
            ptx_term, _ = ptx_loss(logits, ptx.input_ids, ptx.loss_mask, ptx_coef=hp.ptx_coef)
            loss = loss + ptx_term
            stats["ptx_loss"] = ptx_term.detach()
        return loss, stats

    def critic_losses(
        self,
        rollout: Rollout,
        targets: dict[str, Tensor],
        index: Tensor,
        loss: Tensor,
        stats: dict[str, Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``loss`` plus the clipped value loss of each critic on rows ``index``."""
        hp = self.config
        ids, mask = rollout.input_ids[index], rollout.attention_mask[index]
        response_mask = rollout.response_mask[index]
        values, cost_values = self.values(ids, mask, rollout.prompt_length)
        streams = [("reward", values, rollout.reward_values)]
        for s, constraint in enumerate(self.streams):
            streams.append((constraint.name, cost_values[s], rollout.cost_values[s]))
        for name, new, old in streams:  # V_R's loss first, then each V_Ck's (the sum's order)
            critic_loss, _ = clipped_value_loss(
                new,
                old[index],
                targets[f"{name}_returns"][index],
                response_mask,
                clip_range_value=hp.clip_range_value,
            )
            loss = loss + critic_loss
            stats[f"{name}_critic_loss"] = critic_loss.detach()
        return loss, stats

    # -- logging -----------------------------------------------------------------------------

    def step_stats(
        self,
        rollout: Rollout,
        targets: dict[str, Tensor],
        update_stats: dict[str, float],
        schedule_stats: list[dict[str, float]],
        elapsed: float,
    ) -> dict[str, float]:
        mask = rollout.response_mask
        lengths = mask.sum(dim=-1).float()
        kl = rollout.logprobs - rollout.ref_logprobs  # (B, T)
        # R and each C_k over the rollouts of every rank; the other statistics are this rank's.
        k, batch = rollout.cost.shape
        costs = self.all_gather(rollout.cost).reshape(-1, k, batch)  # (W, K, B)
        mean_costs = [costs[:, i].flatten().mean().item() for i in range(k)]
        stats = {
            "reward": self.all_gather(rollout.reward).mean().item(),
            **constraint_stats(self.constraints, mean_costs, schedule_stats),
            "kl_divergence": masked_sum(kl, mask, dim=-1).mean().item(),  # per response
            "kl_per_token": masked_mean(kl, mask, dim=-1).mean().item(),
            "mean_generated_length": lengths.mean().item(),
            "max_generated_length": lengths.max().item(),
            "reward_with_kl_penalty": targets["reward_with_kl_penalty"].mean().item(),
            "tokens_per_second": mask.sum().item() / max(elapsed, 1e-9),
            "seconds_per_step": elapsed,
            **self.timings,  # wall clock of each phase (on a GPU, without a sync: approximate)
            "lr": self.lr_schedulers().get_last_lr()[0],
            **update_stats,
        }
        if not self.advantage.critics:
            return stats
        critics = [("reward", rollout.reward_values)]
        values = rollout.cost_values or ()
        critics += [(c.name, v) for c, v in zip(self.streams, values, strict=True)]
        for name, values in critics:
            stats[f"{name}_critic_explained_variance"] = explained_variance(
                values, targets[f"{name}_returns"], mask
            ).item()
        return stats

    def observe(self, rollout: Rollout, stats: dict[str, float], step: int) -> None:
        """Decoded rollouts to the observer (every step) and the sample sink (every N steps)."""
        write_samples = self.sample_sink is not None and step % self.config.log_samples_every == 0
        if self.decode is None or (self.observer is None and not write_samples):
            return
        prompt_length = rollout.prompt_length
        prompts = self.decode(rollout.input_ids[:, :prompt_length])
        responses = self.decode(rollout.input_ids[:, prompt_length:])
        if self.observer is not None:
            stats.update(self.observer(prompts, responses))
        if write_samples:
            rows = sample_rows(self.constraints, step, prompts, responses, rollout)
            self.sample_sink(step, rows)

    def rank_state(self) -> dict[str, Any]:
        """What must be identical on every rank of a data-parallel run and what must not
        (:func:`distributed.rank_report`)."""
        schedules = [c.schedule for c in self.constraints]
        lambdas = [s.lambda_value for s in schedules]
        return rank_report(
            self.global_rank,
            lambdas[0] if len(lambdas) == 1 else lambdas,
            [cost for s in schedules for cost in s.episode_costs],
            self.named_trained_models(),
            ppo_steps=self.ppo_step,
            prompts_digest=self.prompts_digest,
        )

    # -- optimizer, checkpoints --------------------------------------------------------------

    def configure_optimizers(self):
        """One AdamW over disjoint parameter groups: the actor at ``lr``, the critics at
        ``critic_lr`` (per-parameter AdamW, so this equals one optimizer per model)."""
        hp = self.config
        groups = decay_parameter_groups(self.actor, hp.weight_decay)
        for critic in self.trained_models()[1:]:
            critic_groups = decay_parameter_groups(critic, hp.weight_decay)
            groups += [{**group, "lr": hp.critic_lr} for group in critic_groups]
        return configure_adamw(self, groups)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ppo_lag_checkpoint.pack(self, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ppo_lag_checkpoint.unpack(self, checkpoint, self._trainer)


def updates_per_rollout(rollouts: int, update_epochs: int, minibatch_size: int) -> int:
    """Optimizer updates per PPO step; Lightning's global step (and max_steps) counts these."""
    return update_epochs * math.ceil(rollouts / minibatch_size)


def _rows(batch: SupervisedBatch, chunk: int, chunks: int) -> SupervisedBatch | None:
    """The ``chunk``-th of ``chunks`` row slices of a batch (PTX rows spread over minibatches);
    None when it is empty (a short last batch of the SFT data has fewer rows than chunks)."""
    rows = SupervisedBatch(*(t.tensor_split(chunks)[chunk] for t in batch))
    return rows if rows.input_ids.shape[0] > 0 else None
