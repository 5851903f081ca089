"""Time one TRL PPO step (rollout + its PPO updates) on CPU with tiny random Llama models.

Self-contained: run it with the separate TRL environment, e.g.

    OMP_NUM_THREADS=1 nice -n 19 .venv-trl/bin/python benchmarks/trl_ppo_step.py \
        --hidden-size 128 --layers 2 --heads 4 --intermediate 256 --vocab-size 600

It needs only the packages in benchmarks/requirements-trl.txt (trl==1.12.0 is the last release
with a PPOTrainer). Nothing is downloaded: the tokenizer is trained here on a synthetic corpus, the
models are built from a LlamaConfig, and the prompt dataset is made in code.

What one "step" is: TRL's PPOTrainer.train() runs `for update in range(1, num_total_batches + 1)`
(trl/experimental/ppo/ppo_trainer.py, line 669 in 1.12.0); each iteration draws one batch of
prompts, generates, scores, and runs `num_ppo_epochs x num_mini_batches` optimizer steps, then calls
`callback_handler.on_step_end` (line 913). A TrainerCallback records the time of every on_step_end;
a step's time is the gap between two of them (the first step is measured from on_train_begin).
The module-level helpers `batch_generation`, `forward` and `get_reward` of ppo_trainer are wrapped
(without editing TRL) to split each step into generation / rollout forwards / update phase, and
forward pre-hooks on every model backbone count forward passes per step.

Output: one JSON object on stdout (logs and TRL's own prints go to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import itertools
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=256)
    p.add_argument(
        "--vocab-size",
        type=int,
        default=600,
        help="target tokenizer vocabulary (model uses max(this, len(tokenizer)))",
    )
    p.add_argument(
        "--batch-size", type=int, default=16, help="prompts per PPO step (rollout batch)"
    )
    p.add_argument("--response-length", type=int, default=48)
    p.add_argument("--ppo-epochs", type=int, default=1)
    p.add_argument("--minibatches", type=int, default=2)
    p.add_argument("--steps", type=int, default=6, help="PPO steps in total, warm-up included")
    p.add_argument("--warmup", type=int, default=2, help="first steps left out of the median")
    p.add_argument("--prompt-min-tokens", type=int, default=8)
    p.add_argument("--prompt-max-tokens", type=int, default=24)
    p.add_argument(
        "--stop-token",
        choices=["eos", "none"],
        default="eos",
        help="PPOConfig.stop_token: 'eos' truncates responses after the first EOS; "
        "'none' never stops early",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)"
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must be greater than --warmup")
    if args.batch_size % args.minibatches:
        p.error("--batch-size must be a multiple of --minibatches")
    return args


# --------------------------------------------------------------------------- tokenizer and data

_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + [
    "th",
    "ch",
    "sh",
    "qu",
    "st",
    "tr",
]


def synthetic_corpus(n_chars: int, seed: int) -> list[str]:
    """Pseudo-words from syllables: varied enough for a byte-level BPE to learn many merges."""
    rng = random.Random(seed)
    lexicon = [
        "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(20000)
    ]
    cum_weights = list(
        itertools.accumulate(1.0 / (i + 1) for i in range(len(lexicon)))
    )  # Zipf-like
    lines, total = [], 0
    while total < n_chars:
        words = rng.choices(lexicon, cum_weights=cum_weights, k=rng.randint(6, 20))
        line = " ".join(words).capitalize() + rng.choice([".", "?", "!", ","])
        lines.append(line)
        total += len(line) + 1
    return lines


def build_tokenizer(vocab_size: int, seed: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    n_chars = 300_000 if vocab_size <= 1000 else 3_000_000
    tok.train_from_iterator(synthetic_corpus(n_chars, seed), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    hf_tok.padding_side = "left"  # TRL generates from left-padded queries
    return hf_tok


def build_prompt_dataset(tokenizer, n_prompts: int, min_tokens: int, max_tokens: int, seed: int):
    from datasets import Dataset

    rng = random.Random(seed + 1)
    rows = []
    for line in synthetic_corpus(n_prompts * 200, seed + 1):
        ids = tokenizer(line, add_special_tokens=False)["input_ids"]
        if len(ids) < min_tokens:
            continue
        rows.append([tokenizer.bos_token_id, *ids[: rng.randint(min_tokens, max_tokens) - 1]])
        if len(rows) == n_prompts:
            break
    if len(rows) < n_prompts:
        raise RuntimeError("synthetic corpus too small for the requested number of prompts")
    # Only `input_ids`: TRL's DataCollatorWithPadding pads it (left, per tokenizer.padding_side).
    return Dataset.from_dict({"input_ids": rows})


# --------------------------------------------------------------------------- models


def build_models(a, vocab_size: int, tokenizer):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    common = dict(
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
    policy = AutoModelForCausalLM.from_config(LlamaConfig(**common), dtype=torch.float32)
    ref_policy = copy.deepcopy(policy)  # reference = frozen copy of the initial policy
    score_cfg = LlamaConfig(**common, num_labels=1)
    reward_model = AutoModelForSequenceClassification.from_config(score_cfg, dtype=torch.float32)
    value_model = copy.deepcopy(
        reward_model
    )  # value head initialised from the reward model (usual practice)
    for m in (policy, value_model):
        m.train()
    for m in (ref_policy, reward_model):
        m.eval()
        m.requires_grad_(False)
    return policy, ref_policy, reward_model, value_model


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- instrumentation


class StepProbe:
    """Per-step timings and forward-pass counts, filled by wrappers, hooks and a TrainerCallback."""

    def __init__(self):
        self.t_train_begin = None
        self.step_ends: list[float] = []
        self.cur = self._blank()
        self.steps: list[dict] = []
        self.logs: list[dict] = []

    @staticmethod
    def _blank():
        return {
            "t_first_gen": None,
            "gen_s": 0.0,
            "rollout_fwd_s": 0.0,
            "t_last_rollout_fwd_end": None,
            "gen_calls": 0,
            "gen_tokens_computed": 0,
            "gen_tokens_until_eos": 0,
            "response_width": 0,
            "context_length": 0,
            "forward_calls": {},  # "policy:grad" -> n ...
            "decode_calls_len1": 0,
            "optimizer_steps": 0,
            "gc_collect_s": 0.0,
        }

    def count(self, key):
        d = self.cur["forward_calls"]
        d[key] = d.get(key, 0) + 1


def install_probes(probe: StepProbe, trainer, tokenizer, models: dict):
    import trl.experimental.ppo.ppo_trainer as pt

    orig_batch_generation, orig_forward, orig_get_reward = (
        pt.batch_generation,
        pt.forward,
        pt.get_reward,
    )
    eos = tokenizer.eos_token_id

    def batch_generation(model, queries, *args, **kwargs):
        t0 = time.perf_counter()
        if probe.cur["t_first_gen"] is None:
            probe.cur["t_first_gen"] = t0
        out = orig_batch_generation(model, queries, *args, **kwargs)
        probe.cur["gen_s"] += time.perf_counter() - t0
        query_responses = out[0]
        ctx = queries.shape[1]
        resp = query_responses[:, ctx:]
        is_eos = resp == eos
        first = torch.where(
            is_eos.any(1),
            is_eos.int().argmax(1) + 1,
            torch.full_like(is_eos[:, 0], resp.shape[1], dtype=torch.long),
        )
        probe.cur["gen_calls"] += 1
        probe.cur["context_length"] = ctx
        probe.cur["response_width"] = resp.shape[1]
        probe.cur["gen_tokens_computed"] += resp.numel()
        probe.cur["gen_tokens_until_eos"] += int(first.sum())
        return out

    def timed(fn):
        def wrapper(*args, **kwargs):
            if torch.is_grad_enabled():  # PPO update forward: not part of the rollout
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            t1 = time.perf_counter()
            probe.cur["rollout_fwd_s"] += t1 - t0
            probe.cur["t_last_rollout_fwd_end"] = t1
            return out

        return wrapper

    # TRL calls gc.collect() twice per step (after the rollout and after on_step_end).
    class _TimedGC:
        def __getattr__(self, name):
            return getattr(gc, name)

        def collect(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return gc.collect(*args, **kwargs)
            finally:
                probe.cur["gc_collect_s"] += time.perf_counter() - t0

    pt.gc = _TimedGC()
    pt.batch_generation = batch_generation
    pt.forward = timed(orig_forward)
    pt.get_reward = timed(orig_get_reward)

    # Count every forward through each backbone (LlamaModel), with/without grad; for the policy in
    # no-grad mode also count calls whose input has sequence length 1 (= KV-cache decode steps).
    for name, m in models.items():
        backbone = getattr(m, m.base_model_prefix)

        def pre_hook(mod, args, kwargs, _name=name):
            mode = "grad" if torch.is_grad_enabled() else "no_grad"
            probe.count(f"{_name}:{mode}")
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                ids = kwargs.get("inputs_embeds")
            if _name == "policy" and mode == "no_grad" and ids is not None and ids.shape[1] == 1:
                probe.cur["decode_calls_len1"] += 1

        backbone.register_forward_pre_hook(pre_hook, with_kwargs=True)

    # Real optimizer steps (accelerate's wrapper skips .step() while accumulating gradients).
    inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)

    def step_hook(opt, args, kwargs):
        probe.cur["optimizer_steps"] += 1

    inner.register_step_post_hook(step_hook)


def make_callback(probe: StepProbe):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            probe.t_train_begin = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs:
                probe.logs.append(dict(logs))

        def on_step_end(self, args, state, control, **kw):
            t = time.perf_counter()
            prev = probe.step_ends[-1] if probe.step_ends else probe.t_train_begin
            c = probe.cur
            rec = {
                "step": state.global_step,
                "cycle_s": t - prev,  # on_step_end -> on_step_end: everything TRL does per step
                "gen_s": c["gen_s"],
                "rollout_forward_s": c["rollout_fwd_s"],
                "update_phase_s": (t - c["t_last_rollout_fwd_end"])
                if c["t_last_rollout_fwd_end"]
                else None,
                "pre_generation_s": (c["t_first_gen"] - prev) if c["t_first_gen"] else None,
                "gen_calls": c["gen_calls"],
                "context_length": c["context_length"],
                "response_width": c["response_width"],
                "gen_tokens_computed": c["gen_tokens_computed"],
                "gen_tokens_until_eos": c["gen_tokens_until_eos"],
                "forward_calls": dict(sorted(c["forward_calls"].items())),
                "policy_decode_calls_len1": c["decode_calls_len1"],
                "optimizer_steps": c["optimizer_steps"],
                "gc_collect_s": c["gc_collect_s"],
            }
            probe.steps.append(rec)
            probe.step_ends.append(t)
            probe.cur = probe._blank()
            print(
                f"[trl_ppo_step] step {rec['step']}: {rec['cycle_s']:.3f}s "
                f"(gen {rec['gen_s']:.3f}s)",
                file=sys.stderr,
            )

    return StepTimer()


# --------------------------------------------------------------------------- main


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    random.seed(a.seed)
    torch.manual_seed(a.seed)

    import transformers
    import trl
    from transformers import PrinterCallback, ProgressCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    transformers.logging.set_verbosity_error()

    t_setup = time.perf_counter()
    tokenizer = build_tokenizer(a.vocab_size, a.seed)
    vocab = max(a.vocab_size, len(tokenizer))
    policy, ref_policy, reward_model, value_model = build_models(a, vocab, tokenizer)
    n_prompts = a.batch_size * a.steps
    train_ds = build_prompt_dataset(
        tokenizer, n_prompts, a.prompt_min_tokens, a.prompt_max_tokens, a.seed
    )

    out_dir = tempfile.mkdtemp(prefix="trl_ppo_step_")
    cfg = PPOConfig(
        output_dir=out_dir,
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
        # Batch geometry: one rollout of `batch_size` prompts, split into `minibatches` optimizer
        # steps. TRL: local_batch_size = per_device_train_batch_size * gradient_accumulation_steps
        # (the rollout batch); mini batch = local_batch_size / num_mini_batches. Keep
        # gradient_accumulation_steps=1: TRL builds its Accelerator with it, so with g>1 and
        # num_mini_batches>1 the optimizer would only really step every g micro batches, merging
        # minibatches (see optimizer_steps_last_step in the output).
        per_device_train_batch_size=a.batch_size,
        gradient_accumulation_steps=1,
        num_mini_batches=a.minibatches,
        num_ppo_epochs=a.ppo_epochs,
        total_episodes=n_prompts,
        # generate and score the whole rollout in one chunk
        local_rollout_forward_batch_size=a.batch_size,
        response_length=a.response_length,
        stop_token=None if a.stop_token == "none" else "eos",
        num_sample_generations=0,  # no extra generate_completions() between steps
        dataloader_num_workers=0,
    )
    trainer = PPOTrainer(
        args=cfg,
        processing_class=tokenizer,
        model=policy,
        ref_model=ref_policy,
        reward_model=reward_model,
        value_model=value_model,
        train_dataset=train_ds,
        eval_dataset=None,
    )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    probe = StepProbe()
    trainer.add_callback(make_callback(probe))
    install_probes(
        probe,
        trainer,
        tokenizer,
        {"policy": policy, "ref": ref_policy, "reward": reward_model, "value": value_model},
    )
    setup_s = time.perf_counter() - t_setup

    with contextlib.redirect_stdout(sys.stderr):  # TRL prints "===training policy==="
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)  # save_strategy="no": nothing in it worth keeping

    timed_steps = probe.steps[a.warmup :]
    med = lambda key: statistics.median(s[key] for s in timed_steps)  # noqa: E731
    step_s = med("cycle_s")
    tokens_computed = med("gen_tokens_computed")
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    last = probe.steps[-1]
    result = {
        "config": {
            "hidden_size": a.hidden_size,
            "layers": a.layers,
            "heads": a.heads,
            "intermediate": a.intermediate,
            "vocab_requested": a.vocab_size,
            "tokenizer_len": len(tokenizer),
            "model_vocab": vocab,
            "params_per_model": {
                "policy": n_params(policy),
                "ref": n_params(ref_policy),
                "reward": n_params(reward_model),
                "value": n_params(value_model),
            },
            "batch_size": a.batch_size,
            "response_length": a.response_length,
            "ppo_epochs": a.ppo_epochs,
            "minibatches": a.minibatches,
            "mini_batch_size": cfg.local_mini_batch_size,
            "per_device_train_batch_size": cfg.per_device_train_batch_size,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "local_rollout_forward_batch_size": cfg.local_rollout_forward_batch_size,
            "stop_token": cfg.stop_token,
            "temperature": cfg.temperature,
            "steps": a.steps,
            "warmup": a.warmup,
            "timed_steps": len(timed_steps),
            "torch_threads": torch.get_num_threads(),
            "device": str(trainer.accelerator.device),
            "mixed_precision": trainer.accelerator.mixed_precision,
        },
        "median_step_s": step_s,
        "prompts_per_s": a.batch_size / step_s,
        "generated_tokens_per_s": tokens_computed / step_s,
        "generated_tokens_until_eos_per_s": med("gen_tokens_until_eos") / step_s,
        "median_generation_s": med("gen_s"),
        "generation_tokens_per_s": tokens_computed / med("gen_s"),
        "median_rollout_forward_s": med("rollout_forward_s"),
        "median_update_phase_s": med("update_phase_s"),
        "median_pre_generation_s": med("pre_generation_s"),
        "median_gc_collect_s": med("gc_collect_s"),
        "median_phase_s": {  # the names of ours (update phase: GAE, updates, gc.collect)
            "generation_seconds": med("gen_s"),
            "scoring_seconds": med("rollout_forward_s"),
            "update_seconds": med("update_phase_s"),
        },
        "median_step_excl_gc_collect_s": statistics.median(
            s["cycle_s"] - s["gc_collect_s"] for s in timed_steps
        ),
        "breakdown_note": (
            "step = on_step_end to on_step_end; generation and rollout_forward are disjoint; "
            "update_phase = last rollout forward -> on_step_end (GAE, PPO minibatches, logging, "
            "and the "
            "post-rollout gc.collect); pre_generation = previous on_step_end -> generate (tail "
            "gc.collect + next batch); gc_collect overlaps update_phase and pre_generation"
        ),
        "step_times_s": [round(s["cycle_s"], 4) for s in probe.steps],
        "step_shapes": [
            {"rows": a.batch_size, "prompt": s["context_length"], "response": s["response_width"]}
            for s in probe.steps
        ],
        "forward_passes_last_step": last["forward_calls"],
        "policy_kv_cache_decode_calls_last_step": last["policy_decode_calls_len1"],
        "context_length_last_step": last["context_length"],
        "response_width_last_step": last["response_width"],
        "optimizer_steps_last_step": last["optimizer_steps"],
        "final_log": {
            k: v
            for k, v in (probe.logs[-1] if probe.logs else {}).items()
            if k
            in (
                "objective/kl",
                "objective/scores",
                "loss/policy_avg",
                "loss/value_avg",
                "val/num_eos_tokens",
                "lr",
                "episode",
            )
        },
        "setup_s": setup_s,
        "train_s": train_s,
        "peak_rss_mib": maxrss_kb / 1024.0,
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
