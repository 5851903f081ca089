"""Time one TRL GRPO step (a generation batch and its updates) on CPU with random Llama models.

The counterpart of ``ppo_step.py --advantage grpo``: the same tokenizer, prompts, model shapes,
sampling temperature (0.7), prompts per step, responses per prompt (``--group-size``), response
length and minibatches. Run it with the TRL environment (``benchmarks/requirements-trl.txt``)::

    .venv-trl/bin/python benchmarks/trl_grpo_step.py --hidden-size 128 --layers 2 --heads 4 \\
        --intermediate 256 --vocab-size 600 --batch-size 4 --group-size 4 --beta 0.05

What one step is here: TRL's ``GRPOTrainer`` (1.12.0, ``trl/trainer/grpo_trainer.py``) draws a
generation batch of ``batch_size x group_size`` completions every ``steps_per_generation``
optimizer steps (``_prepare_inputs``), scores it with the reward model (the texts decoded and
re-tokenized for it), and splits it into that many minibatches, one optimizer step each; we set
``steps_per_generation`` to ``--minibatches`` and ``num_iterations`` to ``--ppo-epochs``, so one
generation batch and its updates is the step of our GRPO-Lagrangian run. It is timed from the
``on_step_end`` that closes one generation batch's updates to the next. TRL's GRPO has the reward
only (no cost model, no λ); β (``--beta``) is the KL weight of its k3 term, with a reference
model when > 0 (ours: ``stage.kl_coef``). bf16 and gradient checkpointing (GRPOConfig's
defaults) are off, as for the PPO script. ``_generate_and_score_completions`` and ``_generate``
are wrapped (without editing TRL) to split the step into generation, scoring and updates.

Output: one JSON object on stdout (logs and TRL's own prints go to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trl_ppo_step import build_models, build_prompt_dataset, build_tokenizer, parse_args


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--group-size", type=int, default=4, help="completions per prompt")
    extra.add_argument("--beta", type=float, required=True, help="KL weight (k3 term)")
    g, rest = extra.parse_known_args(argv)
    a = parse_args(rest)
    if a.threads:
        torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    tokenizer = build_tokenizer(a.vocab_size, a.seed)
    vocab = max(a.vocab_size, len(tokenizer))
    policy, _, reward_model, _ = build_models(a, vocab, tokenizer)
    work = tempfile.mkdtemp(prefix="trl_grpo_step_")
    # TRL builds its reference model from the policy's path: save the random policy once.
    policy.save_pretrained(f"{work}/policy")
    policy = AutoModelForCausalLM.from_pretrained(f"{work}/policy", dtype=torch.float32)
    ids = build_prompt_dataset(
        tokenizer, a.batch_size * a.steps, a.prompt_min_tokens, a.prompt_max_tokens, a.seed
    )["input_ids"]
    # The same token ids as ours (BOS included): the texts re-tokenize to them.
    prompts = [tokenizer.decode(list(row), skip_special_tokens=False) for row in ids]
    rows = a.batch_size * g.group_size
    config = GRPOConfig(
        output_dir=f"{work}/out",
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=a.seed,
        learning_rate=3e-6,
        per_device_train_batch_size=rows // a.minibatches,
        gradient_accumulation_steps=1,
        steps_per_generation=a.minibatches,
        num_generations=g.group_size,
        num_iterations=a.ppo_epochs,
        max_completion_length=a.response_length,
        temperature=0.7,
        beta=g.beta,
        loss_type="grpo",
        max_steps=a.steps * a.minibatches * a.ppo_epochs,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=reward_model,
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        reward_processing_classes=tokenizer,
    )
    cycle = a.minibatches * a.ppo_epochs  # optimizer steps per generation batch
    ends: list[float] = []
    current: dict = {}
    steps: list[dict] = []

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            ends.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % cycle == 0:
                ends.append(time.perf_counter())
                steps.append(dict(current, cycle_s=ends[-1] - ends[-2]))
                current.clear()

    trainer.add_callback(Timer())
    score_and_generate, generate = trainer._generate_and_score_completions, trainer._generate

    def timed_generate(*args, **kwargs):
        t0 = time.perf_counter()
        out = generate(*args, **kwargs)
        current["gen_s"] = time.perf_counter() - t0
        return out

    def timed_rollout(*args, **kwargs):
        t0 = time.perf_counter()
        out = score_and_generate(*args, **kwargs)
        current["rollout_s"] = time.perf_counter() - t0
        current["rows"], current["prompt"] = out["prompt_ids"].shape
        current["response"] = out["completion_ids"].shape[1]
        return out

    def reward_width(module, args, kwargs):
        current["reward_length"] = kwargs["input_ids"].shape[1]

    trainer._generate, trainer._generate_and_score_completions = timed_generate, timed_rollout
    reward_model.register_forward_pre_hook(reward_width, with_kwargs=True)
    setup_s = time.perf_counter() - started
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    shutil.rmtree(work, ignore_errors=True)

    timed = steps[a.warmup :]
    med = lambda key: statistics.median(s[key] for s in timed)  # noqa: E731
    step_s = med("cycle_s")
    result = {
        "framework": "trl",
        "config": {
            "hidden_size": a.hidden_size,
            "layers": a.layers,
            "heads": a.heads,
            "intermediate": a.intermediate,
            "model_vocab": vocab,
            "batch_size": a.batch_size,
            "group_size": g.group_size,
            "beta": g.beta,
            "response_length": a.response_length,
            "num_iterations": a.ppo_epochs,
            "steps_per_generation": config.steps_per_generation,
            "per_device_train_batch_size": config.per_device_train_batch_size,
            "old_logprobs_pass": config.gradient_accumulation_steps
            % (config.steps_per_generation * config.num_iterations)
            != 0,
            "steps": a.steps,
            "warmup": a.warmup,
            "torch_threads": torch.get_num_threads(),
        },
        "median_step_s": step_s,
        "median_step_excl_gc_collect_s": step_s,  # GRPOTrainer calls no gc.collect per step
        "prompts_per_s": a.batch_size / step_s,
        "generated_tokens_per_s": med("rows") * med("response") / step_s,
        "median_phase_s": {
            "generation_seconds": med("gen_s"),
            "scoring_seconds": statistics.median(s["rollout_s"] - s["gen_s"] for s in timed),
            "update_seconds": statistics.median(s["cycle_s"] - s["rollout_s"] for s in timed),
        },
        "step_times_s": [round(s["cycle_s"], 4) for s in steps],
        "step_shapes": [
            {k: s[k] for k in ("rows", "prompt", "response", "reward_length")} for s in steps
        ],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "setup_s": setup_s,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
