"""Check every stage on one GPU: a few steps each of SFT, reward, cost, PPO-Lagrangian and
evaluation in bf16 mixed precision on a ~100M-parameter Llama built from a config (hidden 768,
12 layers, vocabulary of the embedded benchmark's tokenizer) on the embedded benchmark, with each
stage's throughput and peak GPU memory. Run with the project's environment::

    make gpu-check                                   # or, with options:
    .venv/bin/python benchmarks/gpu_check.py --steps 20 --output gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny   # CPU smoke mode (CI)

Each stage runs through the project's own runner (``run_stage``, what ``safe-rlhf-train`` calls)
with ``trainer=gpu``; the only addition is a callback on each stage's Trainer that times every
training step (synchronising the GPU first) and counts its samples and tokens. The first
``--warmup`` steps of a stage are left out of its throughput (allocator and kernel warm-up).
Samples are sequences (SFT), pairs (reward, cost), rollouts (PPO) and responses (evaluation);
tokens are the real (unpadded) tokens trained on, or the tokens PPO generated. The evaluation's
rate is end to end (loading its models included): it trains nothing.

Prints a table and writes the figures as JSON (``--output``). Exits with status 2 and a message
when ``--device cuda`` finds no CUDA device.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import gc
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

STAGES = ("sft", "reward", "cost", "ppo_lag", "eval")
MODEL_100M = {
    "hidden_size": 768,
    "num_layers": 12,
    "num_heads": 12,
    "intermediate_size": 2560,
    "vocab_size": 2048,
}
MODEL_TINY = {
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 512,
}


TINY_DATA = [
    ("sft_train", "sft/train", 0.02),
    ("preference_train", "preference/train", 0.01),
    ("prompt_train", "prompts/train", 0.05),
    ("prompt_eval", "prompts/test", 0.05),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a 1-layer model, short steps and small batches (the CPU smoke mode)",
    )
    parser.add_argument("--steps", type=int, help="training steps per stage (default 20; tiny 3)")
    parser.add_argument("--warmup", type=int, help="steps left out of throughput (3; tiny 1)")
    parser.add_argument("--batch-size", type=int, help="SFT sequences / R, C pairs (32; tiny 4)")
    parser.add_argument("--ppo-prompts", type=int, help="prompts per PPO step (16; tiny 2)")
    parser.add_argument("--ppo-samples", type=int, default=4, help="responses per prompt")
    parser.add_argument("--max-new-tokens", type=int, help="PPO response length (48; tiny 6)")
    parser.add_argument("--eval-prompts", type=int, help="evaluation prompts (64; tiny 4)")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="a prefix of the stage order is enough (each needs the earlier)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("runs/gpu_check"),
        help="run folders, the generated benchmark and the default output",
    )
    parser.add_argument(
        "--output", type=Path, help="JSON report (default <work-dir>/gpu_check.json)"
    )
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's; 1 with --tiny on a CPU)"
    )
    args = parser.parse_args(argv)
    defaults = {
        "steps": (20, 3),
        "warmup": (3, 1),
        "batch_size": (32, 4),
        "ppo_prompts": (16, 2),
        "max_new_tokens": (48, 6),
        "eval_prompts": (64, 4),
    }
    for key, (full, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else full)
    if args.warmup >= args.steps:
        parser.error(f"--warmup ({args.warmup}) must be below --steps ({args.steps})")
    args.output = args.output or args.work_dir / "gpu_check.json"
    if args.threads is None and args.tiny and args.device == "cpu":
        args.threads = 1  # a 1-layer model gains nothing from threads, and loses much on a busy CPU
    return args


def require_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device (torch {torch.__version__}, built for CUDA "
            f"{torch.version.cuda or 'none: a CPU-only build'}; CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}). Run it on a machine with "
            "a GPU, or use --device cpu --tiny for the CPU smoke mode.",
            file=sys.stderr,
        )
        sys.exit(2)


class StepTimer:
    """A Lightning callback (built lazily, see :func:`step_timer`) recording each training
    step's wall time, samples and tokens; on CUDA the device is synchronised around a step."""

    def __init__(self, cuda: bool, samples_per_prompt: int) -> None:
        self.cuda = cuda
        self.samples_per_prompt = samples_per_prompt
        self.steps: list[dict[str, float]] = []
        self._started = 0.0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self._started = time.perf_counter()

    def end(self, module, batch) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        step = {"seconds": time.perf_counter() - self._started, **count(batch)}
        history = getattr(module, "history", None)
        if history:  # a PPO step: samples are rollouts, tokens are the generated ones
            rollouts = step["samples"] * self.samples_per_prompt
            step |= {"samples": rollouts, "tokens": history[-1]["mean_generated_length"] * rollouts}
            phases = ("generation_seconds", "scoring_seconds", "update_seconds")
            step |= {key: history[-1][key] for key in phases if key in history[-1]}
        self.steps.append(step)


def step_timer(cuda: bool, samples_per_prompt: int):
    import pytorch_lightning as pl

    class Callback(StepTimer, pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.end(pl_module, batch)

    return Callback(cuda, samples_per_prompt)


def count(batch) -> dict[str, float]:
    """Rows of the batch's first tensor, and the real tokens of its ``*attention_mask`` tensors
    (a PPO batch: its prompt rows only; the timer replaces both with the rollouts')."""
    if isinstance(batch, dict):  # PPO with PTX: {"prompt": PromptBatch, "ptx": SupervisedBatch}
        batch = batch["prompt"]
    fields = batch._asdict()
    first = next(iter(fields.values()))
    tokens = sum(v.sum().item() for k, v in fields.items() if k.endswith("attention_mask"))
    return {"samples": float(first.shape[0]), "tokens": float(tokens)}


def stage_overrides(stage: str, args: argparse.Namespace, runs: Path) -> list[str]:
    round_dir = runs / "gpu_check" / "round1"
    trained = [f"stage.max_steps={args.steps}", "stage.eval_limit=0"]
    model = MODEL_TINY if args.tiny else MODEL_100M
    per_stage = {
        # No held-out data: validation and final evaluations are not what is measured.
        "sft": [
            *trained,
            f"stage.batch_size={args.batch_size}",
            "data.sft_eval=[]",
            *[f"model.tiny.{key}={value}" for key, value in model.items()],
        ],
        "reward": [*trained, f"stage.batch_size={args.batch_size}", "data.preference_eval=[]"],
        "cost": [*trained, f"stage.batch_size={args.batch_size}", "data.preference_eval=[]"],
        "ppo_lag": [
            *trained,
            f"stage.batch_size={args.ppo_prompts}",
            f"stage.num_return_sequences={args.ppo_samples}",
            f"stage.max_new_tokens={args.max_new_tokens}",
            "stage.update_epochs=1",
            f"stage.minibatch_size={max(1, args.ppo_prompts * args.ppo_samples // 2)}",
            f"stage.log_samples_every={args.steps}",
        ],
        "eval": [
            f"stage.eval_limit={args.eval_prompts}",
            "stage.rater_pairs=0",
            f"stage.eval_max_new_tokens={args.max_new_tokens}",
            f"stage.policies={{sft: {round_dir}/sft/model, safe_rlhf: {round_dir}/ppo_lag/model}}",
        ],
    }
    # The tiny mode reads a sample of the data: tokenizing all of it would take most of its time.
    sample = [f"data.{key}=[benchmark-{name}:{share}]" for key, name, share in TINY_DATA]
    return [
        f"stage={stage}",
        f"run_dir={round_dir / stage}",
        *per_stage[stage],
        *(sample if args.tiny else []),
    ]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from safe_rlhf_lightning.cli.schema import register_configs
    from safe_rlhf_lightning.cli.train import CONF_DIR

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def run_one(stage: str, args: argparse.Namespace) -> dict:
    from safe_rlhf_lightning.cli.runner import run_stage
    from safe_rlhf_lightning.cli.trainer import extra_callbacks

    cuda = args.device == "cuda"
    work = args.work_dir.resolve()
    common = [
        f"trainer={'gpu' if cuda else 'cpu'}",
        "experiment_name=gpu_check",
        "logger=none",
        f"paths.runs_dir={work / 'runs'}",
        f"paths.data_dir={work / 'data'}",
        "save_checkpoints=false",
        "resume=false",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]
    cfg = compose([*common, *stage_overrides(stage, args, work / "runs")])
    timer = step_timer(cuda, args.ppo_samples if stage == "ppo_lag" else 1)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    with extra_callbacks(timer), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's and transformers' advice, not our figures
        results = run_stage(cfg)
    wall = time.perf_counter() - started
    report = summarize(timer.steps[args.warmup :], wall)
    report["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    if stage == "sft":
        report["num_parameters"] = results.get("num_parameters")
    if stage == "eval":  # no training steps: responses of every policy over the whole run
        responses = args.eval_prompts * 2
        report |= {"samples": responses, "samples_per_s": responses / wall}
    return report


def summarize(steps: list[dict[str, float]], wall: float) -> dict:
    report: dict = {"wall_s": wall, "timed_steps": len(steps)}
    if not steps:
        return report
    seconds = sum(step["seconds"] for step in steps)
    report |= {
        "median_step_s": statistics.median(step["seconds"] for step in steps),
        "samples_per_step": steps[-1]["samples"],
        "samples_per_s": sum(step["samples"] for step in steps) / seconds,
        "tokens_per_s": sum(step["tokens"] for step in steps) / seconds,
    }
    phases = [key for key in steps[-1] if key.endswith("_seconds")]
    report |= {f"median_{key}": statistics.median(step[key] for step in steps) for key in phases}
    return report


def environment(args: argparse.Namespace) -> dict:
    info = {
        "torch": torch.__version__,
        "device": args.device,
        "tiny": args.tiny,
        "model": MODEL_TINY if args.tiny else MODEL_100M,
        "steps": args.steps,
        "warmup": args.warmup,
        "precision": "bf16-mixed" if args.device == "cuda" else "32-true",
    }
    if args.device == "cuda":
        info |= {
            "gpu": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return info


def print_table(report: dict) -> None:
    print(
        f"{'stage':<8} {'step s':>8} {'samples/s':>10} {'tokens/s':>10} {'peak GiB':>9} "
        f"{'wall s':>7}"
    )
    for stage, row in report["stages"].items():
        cells = [
            row.get("median_step_s"),
            row.get("samples_per_s"),
            row.get("tokens_per_s"),
            row.get("peak_memory_gib"),
        ]
        shown = ["-" if value is None else f"{value:.3f}" for value in cells]
        print(
            f"{stage:<8} {shown[0]:>8} {shown[1]:>10} {shown[2]:>10} {shown[3]:>9} "
            f"{row['wall_s']:>7.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    require_device(args.device)
    # The stages' own progress and Lightning's notices would bury the table: warnings only
    # (after Lightning's import, which sets its loggers' levels).
    import pytorch_lightning  # noqa: F401

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("pytorch_lightning", "lightning_fabric", "safe_rlhf_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"environment": environment(args), "stages": {}}
    for stage in STAGES:
        if stage in args.stages:
            report["stages"][stage] = run_one(stage, args)
    parameters = report["stages"].get("sft", {}).get("num_parameters")
    report["environment"]["num_parameters"] = parameters
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    size = f"{parameters:,} parameters" if parameters else "model size not measured (no SFT)"
    print(f"device: {report['environment'].get('gpu', args.device)}; {size}")
    print_table(report)
    print(f"report: {args.output}")


if __name__ == "__main__":
    main()
