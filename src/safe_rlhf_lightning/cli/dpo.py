"""Runner of the dpo stage: starting policy and frozen reference → DPO, IPO or KTO on one
preference axis → policy folder, oracle evaluation before and after."""

from __future__ import annotations

import logging

import torch

from ..config import ConfigError, DPOStageConfig, RunConfig
from ..data import (
    PreferenceDataModule,
    datasets_without_safety_labels,
    pad_sequences,
    read_jsonl_rows,
    tokenize_supervised,
)
from ..evaluation import oracle_table
from ..files import write_text_atomic
from ..functional import sequence_logprobs
from ..models import load_causal_lm, load_tokenizer, save_pretrained_atomic
from ..rollout import same_tokenizer
from ..stages import DPOModule
from .data import datamodule_options
from .hub import require_model_folder
from .loggers import log_metrics
from .models import prepare_trained_model
from .runner import (
    DataNeed,
    StageContext,
    TrainingJob,
    fit_and_report,
    validation_after_fit,
)

log = logging.getLogger(__name__)


def dpo_data(run: RunConfig) -> list[DataNeed]:
    """The preference pairs; on the ``safer`` axis every pair needs its safety labels."""
    data, safer = run.data, run.stage.axis == "safer"
    if safer:
        for key in ("preference_train", "preference_eval"):
            unlabelled = datasets_without_safety_labels(getattr(data, key))
            if unlabelled:
                raise ConfigError(
                    f"config key 'stage.axis' is safer, but 'data.{key}' lists "
                    f"{', '.join(map(repr, unlabelled))}, preference pairs without safety labels "
                    "(no safer_response_id): use stage.axis=better on them, or safety-labelled "
                    "pairs (data=pku_saferlhf, the embedded benchmark, your own)"
                )
    return [
        DataNeed("data.preference_train", data.preference_train, "preference", True, safer),
        DataNeed("data.preference_eval", data.preference_eval, "preference", False, safer),
    ]


def run_dpo(ctx: StageContext) -> dict:
    stage: DPOStageConfig = ctx.stage
    typed, data = ctx.run, ctx.data
    trust, dtype = typed.model.trust_remote_code, typed.model.dtype
    require_model_folder(stage.init_from, "stage.init_from", "run the sft stage first")
    require_model_folder(
        stage.reference_init, "stage.reference_init", "the starting policy by default"
    )
    tokenizer = load_tokenizer(stage.init_from, trust_remote_code=trust)
    reference_tokenizer = load_tokenizer(stage.reference_init, trust_remote_code=trust)
    if not same_tokenizer(reference_tokenizer, tokenizer):
        raise ConfigError(
            f"config key 'stage.reference_init': {stage.reference_init} has another tokenizer "
            f"than stage.init_from ({len(reference_tokenizer)} vs {len(tokenizer)} tokens); "
            "the reference must read the policy's token ids"
        )
    datamodule = PreferenceDataModule(
        tokenizer,
        data.preference_train,
        data.preference_eval,
        safety=stage.axis == "safer",
        **datamodule_options(typed, ctx.template),
    )
    datamodule.setup("fit")  # tokenization problems fail here, before any model is loaded
    policy = load_causal_lm(stage.init_from, trust_remote_code=trust, dtype=dtype)
    prepare_trained_model(policy, typed.model)  # LoRA, activation checkpointing
    reference = load_causal_lm(stage.reference_init, trust_remote_code=trust, dtype=dtype)
    module = DPOModule(policy, reference, stage)

    def report(trainer, results: dict) -> None:
        if "test" in results:
            results["test"]["kl_to_reference"] = _kl_to_reference(ctx, policy, reference, tokenizer)
            log_metrics(trainer, {"test/kl_to_reference": results["test"]["kl_to_reference"]})
            _write_summary(ctx, results)

    job = TrainingJob(
        module,
        {"datamodule": datamodule},
        folders={"model": (policy, lambda m, path: save_pretrained_atomic(m, tokenizer, path))},
        policy=(policy, tokenizer),
        results={"axis": stage.axis, "loss_type": stage.loss_type, "beta": stage.beta},
        after_fit=validation_after_fit(module, datamodule) if data.preference_eval else None,
        report=report,
    )
    return fit_and_report(ctx, job)


@torch.no_grad()
def _kl_to_reference(ctx: StageContext, policy, reference, tokenizer) -> float:
    """KL(π || π_ref) per response on the held-out prompts: the mean over the oracle
    evaluation's samples of π (``samples.jsonl``) of log π(y|x) - log π_ref(y|x), the Monte Carlo
    estimate (exact in expectation at eval_temperature 1 and eval_top_p 1, for the responses as
    re-tokenized from their text)."""
    rows = read_jsonl_rows(ctx.run_dir / "samples.jsonl")
    sequences = [
        tokenize_supervised(
            row["prompt"], row["response"], tokenizer, ctx.template, ctx.data.max_length
        )
        for row in rows
    ]
    device = next(policy.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training, total = policy.training, 0.0
    policy.eval()
    for start in range(0, len(sequences), ctx.stage.eval_batch_size):
        chunk = sequences[start : start + ctx.stage.eval_batch_size]
        ids, mask = (t.to(device) for t in pad_sequences([s[0] for s in chunk], pad_id))
        response, _ = pad_sequences([s[1] for s in chunk], False, dtype=torch.bool)
        logratio = [
            sequence_logprobs(
                m(input_ids=ids, attention_mask=mask).logits, ids, response.to(device)
            )
            for m in (policy, reference)
        ]
        total += float((logratio[0] - logratio[1]).sum())  # one host sync per batch
    policy.train(was_training)
    return total / max(len(sequences), 1)


def _write_summary(ctx: StageContext, results: dict) -> None:
    stage: DPOStageConfig = ctx.stage
    columns = {"start": results["init"]} if "init" in results else {}
    columns[f"{stage.loss_type} ({stage.axis})"] = results["test"]
    table = oracle_table(columns)
    text = (
        f"# {stage.loss_type.upper()} on the {stage.axis} axis (β = {stage.beta}): oracle "
        f"evaluation on held-out benchmark prompts\n\n{table}"
    )
    write_text_atomic(ctx.run_dir / "summary.md", text)
    log.info("oracle evaluation (%s):\n%s", ctx.run_dir / "summary.md", table)
