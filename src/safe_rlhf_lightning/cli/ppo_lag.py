"""Runner of the PPO-Lagrangian stage: SFT policy, R, C → PPO with a λ schedule → actor folder,
oracle evaluation before and after, training curves."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import CombinedLoader

from ..benchmark import evaluate_responses
from ..config import ConfigError, PPOLagStageConfig, RunConfig
from ..data import PromptDataModule, PromptTemplate, SupervisedDataModule, read_jsonl_rows
from ..distributed import gather_objects, ranks_in_sync, replicates_parameters
from ..evaluation import (
    oracle_table,
    plot_constraint_curves,
    plot_training_curves,
    second_half_oscillation,
)
from ..files import append_jsonl, write_jsonl_atomic, write_text_atomic
from ..models import ScoreModel, load_causal_lm, load_tokenizer, save_pretrained_atomic
from ..stages import PPOLagModule, updates_per_rollout
from .advantage import build_advantage
from .constraints import ConstraintModels, check_heads, load_constraints
from .data import datamodule_options, uses_benchmark
from .hub import require_model_folder
from .models import frozen_score_model, prepare_trained_model, require_same_tokens
from .runner import DataNeed, StageContext, TrainingJob, fit_and_report
from .schedules import build_schedule
from .trainer import deepspeed_clipping

log = logging.getLogger(__name__)


def ppo_lag_data(run: RunConfig) -> list[DataNeed]:
    data, stage = run.data, run.stage
    needs = [DataNeed("data.prompt_train", data.prompt_train, "prompt", required=True)]
    if stage.ptx_coef > 0:
        needs.append(DataNeed("data.sft_train", data.sft_train, "supervised", required=True))
    return needs


def run_ppo_lag(ctx: StageContext) -> dict:
    stage: PPOLagStageConfig = ctx.stage
    typed, data, run_dir = ctx.run, ctx.data, ctx.run_dir
    schedule = build_schedule(ctx.cfg)
    advantage = build_advantage(ctx.cfg)
    trust, dtype = typed.model.trust_remote_code, typed.model.dtype
    check_heads(typed)  # before any model is loaded

    require_model_folder(
        stage.actor_init,
        "stage.actor_init",
        "run the sft stage (round 1) or the previous round first",
        kind="policy",
    )
    tokenizer = load_tokenizer(stage.actor_init, trust_remote_code=trust)
    actor = load_causal_lm(stage.actor_init, trust_remote_code=trust, dtype=dtype)
    prepare_trained_model(actor, typed.model)  # LoRA, checkpointing; never on frozen models
    require_model_folder(
        stage.reference_init,
        "stage.reference_init",
        "the round's starting policy by default",
        kind="policy",
    )
    require_same_tokens(stage.reference_init, "stage.reference_init", tokenizer, typed)
    reference = load_causal_lm(stage.reference_init, trust_remote_code=trust, dtype=dtype)
    reward_model, reward_retokenizer = frozen_score_model(
        stage.reward_model, "reward", "stage.reward_model", tokenizer, typed
    )
    if typed.constraints:
        plan = load_constraints(
            typed,
            lambda path, key: frozen_score_model(path, "cost", key, tokenizer, typed),
            stage.reward_critic_init,
        )
        cost_model, cost_retokenizer, schedule = plan.cost_models, None, None
        reward_critic, cost_critic = (
            _constraint_critics(stage, plan, tokenizer, typed) if advantage.critics else (None, {})
        )
    else:
        plan, cost_model, cost_retokenizer = None, None, None
        if stage.cost_model is not None:
            cost_model, cost_retokenizer = frozen_score_model(
                stage.cost_model, "cost", "stage.cost_model", tokenizer, typed
            )
        elif schedule.two_streams:
            raise ConfigError(
                f"config key 'stage.cost_model' is needed by {type(schedule).__name__}"
            )
        reward_critic, cost_critic = (
            _critics(stage, schedule.two_streams, tokenizer, typed)
            if advantage.critics
            else (None, None)  # a critic-free estimator loads, trains and saves none
        )

    loader = _train_loader(typed, tokenizer, ctx.template)
    module = PPOLagModule(
        actor,
        reference,
        reward_model,
        cost_model,
        reward_critic,
        cost_critic,
        schedule,
        stage,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        advantage=advantage,
        reward_retokenizer=reward_retokenizer,
        cost_retokenizer=cost_retokenizer,
        decode=lambda ids: [
            t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)
        ],
        observer=(
            _oracle_observer(ctx.template, per_category=len(typed.constraints) > 1)
            if uses_benchmark(data.prompt_train)
            else None
        ),
        sample_sink=_SampleFile(run_dir / "samples_train.jsonl", lambda: module.trainer),
        constraints=plan.constraints if plan is not None else None,
    )
    rollouts = stage.batch_size * stage.num_return_sequences
    updates = updates_per_rollout(rollouts, stage.update_epochs, stage.minibatch_size)

    def after_fit(trainer) -> dict:
        rank_states = gather_objects(module.rank_state()) if replicates_parameters(trainer) else []
        if len(rank_states) <= 1:
            return {}
        in_sync = ranks_in_sync(rank_states)
        if not in_sync and trainer.is_global_zero:
            log.error("the ranks ended with different λ or weights: %s", rank_states)
        return {"ranks": rank_states, "ranks_in_sync": in_sync}

    def report(trainer, results: dict) -> None:
        history = module.history
        write_jsonl_atomic(run_dir / "history.jsonl", history)
        plot_training_curves(
            {results["schedule"]: history},
            run_dir / "training_curves.png",
            typed.cost_threshold.cost_limit if plan is None else None,
        )
        if len(module.constraints) > 1:  # one constraint: today's keys, in training_curves.png
            limits = {c.name: c.limit for c in module.constraints}
            plot_constraint_curves(history, limits, run_dir / "constraint_curves.png")
        results["train"] = _training_summary(history)
        _write_summary(run_dir, results)

    folders = {"model": (actor, lambda m, path: save_pretrained_atomic(m, tokenizer, path))}
    if stage.save_critics:
        first = "critic" if module.shared_critic else "reward_critic"
        for name, critic in module.named_trained_models().items():  # none without critics
            if name != "actor":
                folder = first if name == "reward_critic" else name
                folders[folder] = (critic, lambda m, path: m.save_pretrained(path, tokenizer))
    job = TrainingJob(
        module,
        {"train_dataloaders": loader},
        folders=folders,
        policy=(actor, tokenizer),
        results=_run_results(typed, module, advantage.name),
        checkpoint_per_ppo_step=True,
        # Lightning's steps are optimizer updates here: `updates` per PPO step. Gradients are
        # clipped per model inside the module (manual optimization); every PPO step is logged.
        trainer_overrides={
            "max_steps": stage.max_steps * updates,
            "gradient_clip_val": None,
            "log_every_n_steps": 1,
            "enable_checkpointing": False,  # PPOStepCheckpoint writes last.ckpt
        },
        configure_trainer=deepspeed_clipping(stage.max_grad_norm),
        after_fit=after_fit,
        report=report,
    )
    with warnings.catch_warnings():  # the reference, R and C are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        return fit_and_report(ctx, job)


def _run_results(typed: RunConfig, module: PPOLagModule, advantage: str) -> dict:
    """What results.json says of the run's method: its schedule(s), estimator and limit(s)."""
    if not typed.constraints:
        return {
            "schedule": type(module.schedule).__name__,
            "advantage": advantage,
            "cost_limit": typed.cost_threshold.cost_limit,
        }
    constraints = {
        c.name: {
            "schedule": type(c.schedule).__name__,
            "limit": c.limit,
            "scorer": typed.constraints[c.name].scorer,
        }
        for c in module.constraints
    }
    schedules = "+".join(sorted({v["schedule"] for v in constraints.values()}))
    return {"schedule": schedules, "advantage": advantage, "constraints": constraints}


def _constraint_critics(stage: PPOLagStageConfig, plan: ConstraintModels, tokenizer, typed):
    """V_R and each two-stream constraint's V_Ck (or one shared critic with a head each)."""
    reward_critic = _critic(stage.reward_critic_init, "stage.reward_critic_init", tokenizer, typed)
    if stage.shared_critic and plan.critic_inits:
        return reward_critic.with_extra_head(len(plan.critic_inits)), {}
    critics = {}
    for name, (folder, key, head) in plan.critic_inits.items():
        critic = _critic(folder, key, tokenizer, typed)
        if critic.score_dim > 1 and head is None:
            raise ConfigError(
                f"config key '{key}': {folder} has {critic.score_dim} heads; a cost critic "
                "starts from one (a one-head model, or the constraint's own cost model)"
            )
        critics[name] = critic.with_heads([head]) if critic.score_dim > 1 else critic
    return reward_critic, critics


def _critics(stage: PPOLagStageConfig, two_streams: bool, tokenizer, typed: RunConfig):
    """V_R and V_C (None for one-stream schedules and a shared, two-head V_R)."""
    reward_critic = _critic(stage.reward_critic_init, "stage.reward_critic_init", tokenizer, typed)
    if two_streams and stage.shared_critic:
        return reward_critic.with_extra_head(), None  # V_R on head 0, V_C on head 1
    if two_streams:
        return reward_critic, _critic(
            stage.cost_critic_init, "stage.cost_critic_init", tokenizer, typed
        )
    return reward_critic, None


def _critic(path: str | None, key: str, actor_tokenizer, typed: RunConfig) -> ScoreModel:
    """A critic (no normalization) from a score model or causal LM sharing the actor's tokens."""
    require_model_folder(path, key, "a score model (R or C by default) or a causal LM")
    trust = typed.model.trust_remote_code
    require_same_tokens(path, key, actor_tokenizer, typed)
    critic = ScoreModel.from_pretrained(
        path,
        score_type="critic",
        do_normalize=False,
        trust_remote_code=trust,
        dtype=typed.model.dtype,
    )
    return prepare_trained_model(critic, typed.model).train()


def _train_loader(typed: RunConfig, tokenizer, template: PromptTemplate):
    """Prompt batches, zipped with SFT batches (cycled) when PTX is on."""
    options = datamodule_options(typed, template)
    prompts = PromptDataModule(tokenizer, typed.data.prompt_train, [], **options)
    if typed.stage.ptx_coef == 0:
        return prompts.train_dataloader()
    ptx = SupervisedDataModule(tokenizer, typed.data.sft_train, [], **options)
    loaders = {"prompt": prompts.train_dataloader(), "ptx": ptx.train_dataloader()}
    return CombinedLoader(loaders, mode="max_size_cycle")


def _oracle_observer(template: PromptTemplate, per_category: bool):
    """Oracle metrics of each rollout, logged next to the learned R and C (never trained on);
    ``per_category`` (runs under several constraints) adds the harmful ratio of the rollout's
    harmful prompts of each harm category (``oracle_harmful_ratio/<category>``)."""
    keys = ("harmful_ratio_harmful", "harmful_ratio_dual_use", "helpfulness_benign", "cost")

    def observe(prompts: list[str], responses: list[str]) -> dict[str, float]:
        raw = [template.extract_prompt(p) for p in prompts]
        metrics = evaluate_responses(raw, responses)
        observed = {f"oracle_{k}": metrics[k] for k in keys if k in metrics}
        if per_category:
            categories = {k: v for k, v in metrics.items() if k.startswith("harmful_ratio/")}
            observed |= {f"oracle_{k}": v for k, v in categories.items()}
        return observed

    return observe


class _SampleFile:
    """``samples_train.jsonl``, appended every ``log_samples_every`` steps (and sent to wandb
    as a table). A resumed run first drops the rows of steps it is about to redo (written by
    the killed run after its last checkpoint), so each step appears once."""

    def __init__(self, path: Path, trainer: Callable[[], pl.Trainer]) -> None:
        self.path, self.trainer_of = path, trainer
        self.checked = False

    def __call__(self, step: int, rows: list[dict]) -> None:
        trainer = self.trainer_of()
        if not trainer.is_global_zero:
            return
        if not self.checked and self.path.exists():  # rewritten whole: a torn last line goes
            kept = [row for row in read_jsonl_rows(self.path) if row["step"] < step]
            write_jsonl_atomic(self.path, kept)
        self.checked = True
        append_jsonl(self.path, rows)
        for logger in trainer.loggers:
            if hasattr(logger, "log_table"):  # wandb
                columns = list(rows[0])
                data = [list(r.values()) for r in rows]
                logger.log_table("train/samples", columns=columns, data=data)


def _training_summary(history: list[dict]) -> dict:
    if not history:
        return {}
    last = history[-max(1, len(history) // 10) :]  # the last tenth of the run
    per_run = ("reward", "cost", "episode_cost", "lambda")
    per_constraint = ("cost/", "episode_cost/", "lambda/")  # with several constraints
    keys = [k for k in last[-1] if k in per_run or k.startswith(per_constraint)]
    summary = {f"final_{k}": sum(r[k] for r in last) / len(last) for k in keys}
    summary["steps"] = len(history)
    summary["seconds_per_step"] = sum(r["seconds_per_step"] for r in history) / len(history)
    for key in ("lambda", "oracle_harmful_ratio_harmful", "episode_cost"):
        for stat, value in second_half_oscillation(history, key).items():
            summary[f"second_half_{key}_{stat}"] = value
    return summary


def _write_summary(run_dir: Path, results: dict) -> None:
    if "constraints" in results:
        limits = ", ".join(
            f"{name} <= {c['limit']} ({c['schedule']})"
            for name, c in results["constraints"].items()
        )
        lines = [f"# PPO under {len(results['constraints'])} constraints: {limits}", ""]
    else:
        lines = [f"# PPO ({results['schedule']}), cost limit {results['cost_limit']}", ""]
    if "test" in results:
        columns = {"start": results["init"]} if "init" in results else {}
        columns["after PPO"] = results["test"]
        lines += ["Oracle evaluation on held-out benchmark prompts:", "", oracle_table(columns)]
    lines += [
        "Training (learned R and C; last tenth of the steps, and the second half's spread):",
        "",
    ]
    lines += ["| quantity | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in results.get("train", {}).items()]
    lines += ["", "![training curves](training_curves.png)", ""]
    if len(results.get("constraints", ())) > 1:
        lines += ["![each constraint](constraint_curves.png)", ""]
    text = "\n".join(lines)
    write_text_atomic(run_dir / "summary.md", text)
    log.info("PPO summary (%s):\n%s", run_dir / "summary.md", text)
