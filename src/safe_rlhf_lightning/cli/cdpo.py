"""Runner of the cdpo stage: SFT policy, R, C → constrained DPO with a λ schedule → policy
folder, oracle evaluation, training curves."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from ..config import CDPOStageConfig, RunConfig
from ..data import PromptDataModule
from ..evaluation import oracle_table, plot_training_curves
from ..files import write_jsonl_atomic, write_text_atomic
from ..models import load_causal_lm, load_tokenizer, save_pretrained_atomic
from ..stages import CDPOModule
from .data import datamodule_options
from .hub import require_model_folder
from .models import frozen_score_model, prepare_trained_model, require_same_tokens
from .runner import DataNeed, StageContext, TrainingJob, fit_and_report
from .schedules import build_schedule
from .trainer import deepspeed_clipping

log = logging.getLogger(__name__)


def cdpo_data(run: RunConfig) -> list[DataNeed]:
    return [DataNeed("data.prompt_train", run.data.prompt_train, "prompt", required=True)]


def run_cdpo(ctx: StageContext) -> dict:
    stage: CDPOStageConfig = ctx.stage
    typed, run_dir = ctx.run, ctx.run_dir
    schedule = build_schedule(ctx.cfg)
    trust, dtype = typed.model.trust_remote_code, typed.model.dtype
    require_model_folder(stage.init_from, "stage.init_from", "run the sft stage first")
    require_model_folder(
        stage.reference_init, "stage.reference_init", "the starting policy by default"
    )
    tokenizer = load_tokenizer(stage.init_from, trust_remote_code=trust)
    require_same_tokens(stage.reference_init, "stage.reference_init", tokenizer, typed)
    reward_model, reward_retokenizer = frozen_score_model(
        stage.reward_model, "reward", "stage.reward_model", tokenizer, typed
    )
    cost_model, cost_retokenizer = frozen_score_model(
        stage.cost_model, "cost", "stage.cost_model", tokenizer, typed
    )
    prompts = PromptDataModule(
        tokenizer, ctx.data.prompt_train, [], **datamodule_options(typed, ctx.template)
    )
    loader = prompts.train_dataloader()
    policy = load_causal_lm(stage.init_from, trust_remote_code=trust, dtype=dtype)
    prepare_trained_model(policy, typed.model)  # LoRA, checkpointing; never on frozen models
    reference = load_causal_lm(stage.reference_init, trust_remote_code=trust, dtype=dtype)
    module = CDPOModule(
        policy,
        reference,
        reward_model,
        cost_model,
        schedule,
        stage,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        reward_retokenizer=reward_retokenizer,
        cost_retokenizer=cost_retokenizer,
    )

    def report(trainer, results: dict) -> None:
        history = module.history
        write_jsonl_atomic(run_dir / "history.jsonl", history)
        plot_training_curves(
            {f"C-DPO ({results['schedule']})": history},
            run_dir / "training_curves.png",
            typed.cost_threshold.cost_limit,
        )
        results["train"] = _training_summary(history)
        _write_summary(run_dir, results)

    job = TrainingJob(
        module,
        {"train_dataloaders": loader},
        folders={"model": (policy, lambda m, path: save_pretrained_atomic(m, tokenizer, path))},
        policy=(policy, tokenizer),
        results={
            "schedule": type(schedule).__name__,
            "cost_limit": typed.cost_threshold.cost_limit,
            "loss_type": stage.loss_type,
            "beta": stage.beta,
        },
        checkpoint_per_ppo_step=True,  # stage.checkpoint_every counts iterations
        # Lightning's steps are the optimizer updates: update_epochs per iteration (fewer when
        # an iteration has no pair); the module stops itself after max_steps iterations.
        trainer_overrides={
            "max_steps": stage.max_steps * stage.update_epochs,
            "gradient_clip_val": None,
            "log_every_n_steps": 1,
            "enable_checkpointing": False,  # PPOStepCheckpoint writes last.ckpt
        },
        configure_trainer=deepspeed_clipping(stage.max_grad_norm),
        report=report,
    )
    with warnings.catch_warnings():  # the reference, R and C are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        return fit_and_report(ctx, job)


def _training_summary(history: list[dict]) -> dict:
    """Means over the last tenth of the iterations, and the mean time per iteration."""
    if not history:
        return {}
    last = history[-max(1, len(history) // 10) :]
    keys = [k for k in ("reward", "cost", "episode_cost", "lambda", "pairs") if k in last[-1]]
    summary = {f"final_{k}": sum(r[k] for r in last) / len(last) for k in keys}
    summary["steps"] = len(history)
    summary["seconds_per_step"] = sum(r["seconds_per_step"] for r in history) / len(history)
    return summary


def _write_summary(run_dir: Path, results: dict) -> None:
    lines = [f"# C-DPO ({results['schedule']}), cost limit {results['cost_limit']}", ""]
    if "test" in results:
        columns = {"start": results["init"]} if "init" in results else {}
        columns["after C-DPO"] = results["test"]
        lines += ["Oracle evaluation on held-out benchmark prompts:", "", oracle_table(columns)]
    lines += ["Training (learned R and C; the last tenth of the iterations):", ""]
    lines += ["| quantity | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in results.get("train", {}).items()]
    lines += ["", "![training curves](training_curves.png)", ""]
    text = "\n".join(lines)
    write_text_atomic(run_dir / "summary.md", text)
    log.info("C-DPO summary (%s):\n%s", run_dir / "summary.md", text)
