"""Side-by-side PPO step benchmark: this project's PPO-Lagrangian step against TRL's PPOTrainer.

For each size, runs ``ppo_step.py`` (this project's environment) and ``trl_ppo_step.py`` (TRL's,
``.venv-trl``) alternately, ``--rounds`` times each, with the same options; each run reports the
median of its steps after warm-up, and the figure per framework is the median over its rounds.
Alternating in one run keeps the ratio fair on a shared, noisy machine. Prints a Markdown table
and writes every run's JSON to ``--output``. ``make bench-ppo`` sets everything up and runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

SIZES = {
    # name: (model options, steps, warm-up steps)
    "tiny (default shape, ~0.5M per model)": (
        ["--hidden-size", "128", "--layers", "2", "--heads", "4", "--intermediate", "256",
         "--vocab-size", "600"], 10, 3,
    ),
    "~25M per model": (
        ["--hidden-size", "384", "--layers", "10", "--heads", "6", "--intermediate", "1024",
         "--vocab-size", "8000"], 6, 2,
    ),
}  # fmt: skip
COMMON = [
    "--batch-size",
    "16",
    "--response-length",
    "48",
    "--ppo-epochs",
    "1",
    "--minibatches",
    "2",
]


FRAMEWORKS = {
    # name: (label, script, extra options); "python" picks the interpreter
    "ours": ("safe-rlhf-lightning PPO-Lag (defaults)", "ppo_step.py", []),
    "ours_shared": ("safe-rlhf-lightning PPO-Lag (defaults + shared critic)", "ppo_step.py",
                    ["--shared-critic"]),
    "ours_before": ("safe-rlhf-lightning PPO-Lag (log-probs pass, AdamW loop: the former "
                    "defaults)", "ppo_step.py", ["--logprobs-forward-pass", "--loop-optimizer"]),
    "trl": ("TRL PPOTrainer", "trl_ppo_step.py", []),
}  # fmt: skip


def run(python: str, script: str, options: list[str], threads: int) -> dict:
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [python, str(HERE / script), *options, "--threads", str(threads)]
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="this project's interpreter")
    parser.add_argument("--trl-python", default=str(HERE.parent / ".venv-trl/bin/python"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        "--frameworks", nargs="*", default=list(FRAMEWORKS), choices=list(FRAMEWORKS)
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "ppo_step.json")
    args = parser.parse_args(argv)
    if "trl" not in args.frameworks:
        parser.error("--frameworks must include trl: every figure is a ratio to it")
    frameworks = {name: FRAMEWORKS[name] for name in args.frameworks}

    record: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
        },
        "common_options": COMMON,
        "sizes": {},
    }
    rows = []
    for size in args.sizes:
        model, steps, warmup = SIZES[size]
        options = [*model, *COMMON, "--steps", str(steps), "--warmup", str(warmup)]
        runs: dict[str, list[dict]] = {name: [] for name in frameworks}
        for round_index in range(args.rounds):
            for name, (_, script, extra) in frameworks.items():
                python = args.trl_python if name == "trl" else args.python
                result = run(python, script, [*options, *extra], args.threads)
                runs[name].append(result)
                print(
                    f"[{size}] round {round_index + 1} {name}: "
                    f"{result['median_step_s']:.3f} s/step",
                    file=sys.stderr,
                )
        summary = {
            name: {
                key: statistics.median(r[key] for r in results)
                for key in (
                    "median_step_s",
                    "prompts_per_s",
                    "generated_tokens_per_s",
                    "peak_rss_mib",
                )
            }
            for name, results in runs.items()
        }
        summary["trl"]["median_step_excl_gc_collect_s"] = statistics.median(
            r["median_step_excl_gc_collect_s"] for r in runs["trl"]
        )
        ratio = {
            name: summary[name]["prompts_per_s"] / summary["trl"]["prompts_per_s"]
            for name in frameworks
            if name != "trl"
        }
        record["sizes"][size] = {
            "options": options,
            "summary": summary,
            "ratio": ratio,
            "runs": runs,
        }
        rows.append((size, summary, ratio))
    ours = next(name for name in frameworks if name != "trl")
    record["versions"] = {
        "ours": rows and record["sizes"][args.sizes[0]]["runs"][ours][0]["versions"],
        "trl": rows and record["sizes"][args.sizes[0]]["runs"]["trl"][0]["versions"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")

    print("| size | framework | s / step | prompts / s | tokens / s | peak RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    for size, summary, ratio in rows:
        for name, (label, _, _) in frameworks.items():
            s = summary[name]
            print(
                f"| {size} | {label} | {s['median_step_s']:.3f} | {s['prompts_per_s']:.2f} | "
                f"{s['generated_tokens_per_s']:.0f} | {s['peak_rss_mib']:.0f} |"
            )
        for name, value in ratio.items():
            print(
                f"| {size} | **{FRAMEWORKS[name][0]} / TRL (prompts/s)** | | **{value:.2f}x** | | |"
            )
    print(f"\nruns: {args.output}")


if __name__ == "__main__":
    main()
