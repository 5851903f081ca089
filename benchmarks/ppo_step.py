"""Time one PPO-Lagrangian step of this project (rollout + its PPO updates) on random models.

The counterpart of ``benchmarks/trl_ppo_step.py``, with the same options, the same tokenizer,
prompts, model shapes (untied Llama), sampling temperature (0.7, TRL's default), batch, response
length, PPO epochs and minibatches. Our step does more work than TRL's: a cost model, a cost
critic and λ besides the reward model and the reward critic. Run with the project's environment::

    .venv/bin/python benchmarks/ppo_step.py --hidden-size 128 --layers 2 --heads 4 \\
        --intermediate 256 --vocab-size 600 [--shared-critic] [--logprobs-forward-pass]
        [--loop-optimizer]

Without options the stage's defaults hold; ``--logprobs-forward-pass`` and ``--loop-optimizer``
set ``stage.logprobs_from_generation`` and ``stage.fused_optimizer`` false (the defaults before
they were turned on), ``--shared-critic`` sets ``stage.shared_critic`` true.

A step is timed from one ``on_train_batch_end`` to the next (everything the loop does per step,
as the TRL script measures from one ``on_step_end`` to the next). Prints one JSON object.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import argparse
import itertools
import json
import resource
import statistics
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_ppo_step import build_prompt_dataset, build_tokenizer, parse_args


def build_models(a, vocab_size: int, tokenizer):
    """Actor and reference as in the TRL script; R, C and both critics on the same backbone
    shape (a score head instead of the LM head)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from safe_rlhf_lightning.models import ScoreModel

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=a.hidden_size,
        num_hidden_layers=a.layers,
        num_attention_heads=a.heads,
        num_key_value_heads=a.heads,
        intermediate_size=a.intermediate,
        max_position_embeddings=max(256, a.prompt_max_tokens + a.response_length + 8),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(a.seed)
    actor = LlamaForCausalLM(config)
    reference = LlamaForCausalLM(config)
    reference.load_state_dict(actor.state_dict())
    scores = {
        name: ScoreModel(LlamaForCausalLM(config), score_type=kind)
        for name, kind in (
            ("reward", "reward"),
            ("cost", "cost"),
            ("reward_critic", "critic"),
            ("cost_critic", "critic"),
        )
    }
    return actor, reference, scores


def prompt_batches(tokenizer, a):
    """The TRL script's prompts, left padded into this project's PromptBatch."""
    from safe_rlhf_lightning.types import PromptBatch

    rows = build_prompt_dataset(
        tokenizer, a.batch_size * a.steps, a.prompt_min_tokens, a.prompt_max_tokens, a.seed
    )["input_ids"]
    batches = []
    for start in range(0, len(rows), a.batch_size):
        chunk = rows[start : start + a.batch_size]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.bool)
        for i, row in enumerate(chunk):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = True
        batches.append(PromptBatch(ids, mask))
    return batches


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Options of ours only: one critic backbone with two heads; the defaults' rounding-only
    # speed-ups turned off (old log-probs from a forward pass of their own, AdamW's loop); the
    # advantage estimator and, for a group baseline, the responses per prompt.
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--shared-critic", action="store_true")
    ours.add_argument("--logprobs-forward-pass", action="store_true")
    ours.add_argument("--loop-optimizer", action="store_true")
    ours.add_argument("--advantage", choices=["gae", "grpo"], default="gae")
    ours.add_argument("--group-size", type=int, default=1, help="responses per prompt")
    o, rest = ours.parse_known_args(argv)
    shared_critic = o.shared_critic
    overrides = {}
    if o.logprobs_forward_pass:
        overrides["logprobs_from_generation"] = False
    if o.loop_optimizer:
        overrides["fused_optimizer"] = False
    a = parse_args(rest)
    if o.advantage == "grpo" and (o.group_size < 2 or shared_critic):
        sys.exit("--advantage grpo needs --group-size >= 2 and no critic")
    if a.threads:
        torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    import pytorch_lightning as pl
    import transformers

    from safe_rlhf_lightning.config import GAEAdvantage, GRPOAdvantage, PPOLagStageConfig
    from safe_rlhf_lightning.lagrange import LearnedLambda
    from safe_rlhf_lightning.stages import PPOLagModule, updates_per_rollout

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    tokenizer = build_tokenizer(a.vocab_size, a.seed)
    vocab = max(a.vocab_size, len(tokenizer))
    actor, reference, scores = build_models(a, vocab, tokenizer)
    rollouts = a.batch_size * o.group_size
    minibatch = rollouts // a.minibatches
    advantage = GRPOAdvantage() if o.advantage == "grpo" else GAEAdvantage()
    if not advantage.critics:
        del scores["reward_critic"], scores["cost_critic"]
    if shared_critic:
        scores["reward_critic"] = scores["reward_critic"].with_extra_head()
        del scores["cost_critic"]
    config = PPOLagStageConfig(
        max_new_tokens=a.response_length,
        temperature=0.7,
        max_steps=a.steps,
        update_epochs=a.ppo_epochs,
        minibatch_size=minibatch,
        batch_size=a.batch_size,
        num_return_sequences=o.group_size,
        lr=3e-6,
        critic_lr=3e-6,
        lr_scheduler="constant",
        lr_warmup_ratio=0.0,
        **overrides,
    )
    module = PPOLagModule(
        actor,
        reference,
        scores["reward"],
        scores["cost"],
        scores.get("reward_critic"),
        scores.get("cost_critic"),
        LearnedLambda(cost_limit=0.0),
        config,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        advantage=advantage,
    )
    shapes: list[dict[str, int]] = []  # per step: what the FLOP count needs
    make_rollout = module.make_rollout

    def recording_rollout(prompts):
        rollout = make_rollout(prompts)
        rows, response = rollout.response_mask.shape
        shapes.append({"rows": rows, "prompt": rollout.prompt_length, "response": response})
        return rollout

    module.make_rollout = recording_rollout
    ends: list[float] = []

    class StepTimer(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            ends.append(time.perf_counter())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            ends.append(time.perf_counter())

    updates = updates_per_rollout(rollouts, a.ppo_epochs, minibatch)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=a.steps * updates,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StepTimer()],
    )
    batches = prompt_batches(tokenizer, a)
    setup_s = time.perf_counter() - started
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))

    steps = [later - earlier for earlier, later in itertools.pairwise(ends)]
    timed = steps[a.warmup :]
    history = module.history[a.warmup :]
    step_s = statistics.median(timed)
    tokens = statistics.median(row["mean_generated_length"] * rollouts for row in history)
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    result = {
        "framework": "safe-rlhf-lightning",
        "options": {
            "shared_critic": shared_critic,
            "logprobs_from_generation": config.logprobs_from_generation,
            "fused_optimizer": config.fused_optimizer,
            "advantage": advantage.name,
            "group_size": o.group_size,
        },
        "config": {
            "hidden_size": a.hidden_size,
            "layers": a.layers,
            "heads": a.heads,
            "intermediate": a.intermediate,
            "model_vocab": vocab,
            "params_per_model": {
                "actor": n_params(actor),
                **{k: n_params(v) for k, v in scores.items()},
            },
            "batch_size": a.batch_size,
            "response_length": a.response_length,
            "ppo_epochs": a.ppo_epochs,
            "minibatches": a.minibatches,
            "steps": a.steps,
            "warmup": a.warmup,
            "torch_threads": torch.get_num_threads(),
        },
        "median_step_s": step_s,
        "prompts_per_s": a.batch_size / step_s,
        "generated_tokens_per_s": tokens / step_s,
        "step_times_s": [round(s, 4) for s in steps],
        "step_shapes": shapes,
        "median_phase_s": {
            key: statistics.median(row[key] for row in history)
            for key in ("generation_seconds", "scoring_seconds", "update_seconds")
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "setup_s": setup_s,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "pytorch_lightning": pl.__version__,
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
