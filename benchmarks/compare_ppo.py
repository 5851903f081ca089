"""Side-by-side step benchmark: this project's PPO-Lagrangian and GRPO-Lagrangian steps against
TRL's PPOTrainer and GRPOTrainer, with the work of each step counted.

For each size, runs ``ppo_step.py`` (this project's environment), ``trl_ppo_step.py`` and
``trl_grpo_step.py`` (TRL's, ``.venv-trl``) alternately, ``--rounds`` times each, with the same
options per family (PPO: one response per prompt; GRPO: groups); each round starts with the
machine's fp32 GEMM throughput (``gemm_peak.py``, same thread count). Each run reports the median
of its steps after warm-up and the shapes of every step, from which ``flops.py`` counts the
matrix-product FLOPs per phase; achieved GFLOP/s is the timed steps' FLOPs over their time. The
figure per framework is the median over its rounds, the GEMM peak the median of the rounds'.
Alternating in one run keeps the ratios fair on a shared, noisy machine. Prints a Markdown table
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
sys.path.insert(0, str(HERE))
from flops import (  # noqa: E402
    LlamaShape,
    ours_step_flops,
    trl_grpo_step_flops,
    trl_ppo_step_flops,
)

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
    "--response-length",
    "48",
    "--ppo-epochs",
    "1",
    "--minibatches",
    "2",
]


FRAMEWORKS = {
    # name: (label, script, extra options, family); each family is measured against its TRL
    "ours": ("safe-rlhf-lightning PPO-Lag (defaults)", "ppo_step.py", [], "ppo"),
    "ours_shared": ("safe-rlhf-lightning PPO-Lag (defaults + shared critic)", "ppo_step.py",
                    ["--shared-critic"], "ppo"),
    "ours_before": ("safe-rlhf-lightning PPO-Lag (log-probs pass, AdamW loop: the former "
                    "defaults)", "ppo_step.py", ["--logprobs-forward-pass", "--loop-optimizer"],
                    "ppo"),
    "trl": ("TRL PPOTrainer", "trl_ppo_step.py", [], "ppo"),
    "ours_grpo": ("safe-rlhf-lightning GRPO-Lag (defaults: cost model, λ, k3 KL)", "ppo_step.py",
                  ["--advantage", "grpo"], "grpo"),
    "trl_grpo": ("TRL GRPOTrainer (reward only, k3 KL)", "trl_grpo_step.py", [], "grpo"),
}  # fmt: skip
PEERS = {"ppo": "trl", "grpo": "trl_grpo"}
FAMILY_OPTIONS = {
    # PPO: one response per prompt; GRPO: groups of 4, 4 prompts (16 responses per step as in
    # PPO's), TRL's β set to our KL weight so that both compute the reference's log-probs.
    "ppo": ["--batch-size", "16"],
    "grpo": ["--batch-size", "4", "--group-size", "4"],
}
DEFAULT_FRAMEWORKS = ["ours", "trl", "ours_grpo", "trl_grpo"]


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


def step_flops(name: str, result: dict) -> list[dict[str, int]]:
    """Per step of a run, its matrix-product FLOPs by phase (``flops.py``), from the shapes the
    run reports."""
    c = result["config"]
    shape = LlamaShape(c["hidden_size"], c["layers"], c["heads"], c["intermediate"],
                       c["model_vocab"])  # fmt: skip
    counted = []
    for s in result["step_shapes"]:
        rows, prompt, response = s["rows"], s["prompt"], s["response"]
        if name == "trl":
            phases = trl_ppo_step_flops(shape, rows, prompt, response, epochs=c["ppo_epochs"])
        elif name == "trl_grpo":
            phases = trl_grpo_step_flops(
                shape, rows, prompt, response,
                reward_length=s["reward_length"],
                iterations=c["num_iterations"],
                old_logprobs_pass=c["old_logprobs_pass"],
                reference=c["beta"] > 0,
            )  # fmt: skip
        else:
            o = result["options"]
            critics = 0 if o["advantage"] != "gae" else (1 if o["shared_critic"] else 2)
            phases = ours_step_flops(
                shape, rows, prompt, response,
                epochs=c["ppo_epochs"],
                critics=critics,
                critic_heads=2 if o["shared_critic"] else 1,
                logprobs_pass=not o["logprobs_from_generation"],
            )  # fmt: skip
        counted.append(phases)
    return counted


def work_rates(name: str, result: dict) -> dict:
    """GFLOP per step (median), achieved GFLOP/s over the timed steps (their FLOPs over their
    time) and per phase (median phase FLOPs over median phase time)."""
    warmup = result["config"]["warmup"]
    counted = step_flops(name, result)[warmup:]
    times = result["step_times_s"][warmup:]
    totals = [sum(phases.values()) for phases in counted]
    phase_rates = {
        phase: statistics.median(p[phase] for p in counted) / result["median_phase_s"][key] / 1e9
        for phase, key in (("generation", "generation_seconds"), ("scoring", "scoring_seconds"),
                           ("updates", "update_seconds"))
    }  # fmt: skip
    return {
        "gflop_per_step": statistics.median(totals) / 1e9,
        "gflop_per_step_by_phase": {
            phase: statistics.median(p[phase] for p in counted) / 1e9 for phase in counted[0]
        },
        "achieved_gflops_per_s": sum(totals) / sum(times) / 1e9,
        "achieved_gflops_per_s_by_phase": phase_rates,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="this project's interpreter")
    parser.add_argument("--trl-python", default=str(HERE.parent / ".venv-trl/bin/python"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        "--frameworks", nargs="*", default=DEFAULT_FRAMEWORKS, choices=list(FRAMEWORKS)
    )
    parser.add_argument("--output", type=Path, default=HERE / "results" / "ppo_step.json")
    parser.add_argument("--steps", type=int, help="steps per run (default: the size's)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per run (default: the size's)")
    args = parser.parse_args(argv)
    families = {FRAMEWORKS[name][3] for name in args.frameworks}
    if any(PEERS[family] not in args.frameworks for family in families):
        parser.error("--frameworks must include the TRL peer of each family: figures are ratios")
    frameworks = {name: FRAMEWORKS[name] for name in args.frameworks}
    from safe_rlhf_lightning.config import PPOLagStageConfig

    beta = ["--beta", str(PPOLagStageConfig.kl_coef)]  # TRL's GRPO KL weight: ours

    record: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "load_average_at_start": os.getloadavg(),
        },
        "common_options": COMMON,
        "family_options": FAMILY_OPTIONS,
        "sizes": {},
    }
    rows = []
    for size in args.sizes:
        model, steps, warmup = SIZES[size]
        steps, warmup = args.steps or steps, args.warmup if args.warmup is not None else warmup
        options = [*model, *COMMON, "--steps", str(steps), "--warmup", str(warmup)]
        runs: dict[str, list[dict]] = {name: [] for name in frameworks}
        gemm: list[dict] = []
        for round_index in range(args.rounds):
            gemm.append(run(args.python, "gemm_peak.py", [], args.threads))
            print(f"[{size}] round {round_index + 1} GEMM: "
                  f"{gemm[-1]['median_gflops_per_s']:.1f} GFLOP/s", file=sys.stderr)  # fmt: skip
            for name, (_, script, extra, family) in frameworks.items():
                python = args.python if name.startswith("ours") else args.trl_python
                extra = [*FAMILY_OPTIONS[family], *extra, *(beta if name == "trl_grpo" else [])]
                result = run(python, script, [*options, *extra], args.threads)
                result["work"] = work_rates(name, result)
                result["load_average_after"] = os.getloadavg()
                runs[name].append(result)
                print(
                    f"[{size}] round {round_index + 1} {name}: "
                    f"{result['median_step_s']:.3f} s/step, "
                    f"{result['work']['achieved_gflops_per_s']:.1f} GFLOP/s",
                    file=sys.stderr,
                )
        peak = statistics.median(g["median_gflops_per_s"] for g in gemm)
        summary = {name: summarize(results, peak) for name, results in runs.items()}
        ratio = {}
        for name, (_, _, _, family) in frameworks.items():
            peer = PEERS[family]
            if name == peer:
                continue
            ratio[name] = {
                "prompts_per_s": summary[name]["prompts_per_s"] / summary[peer]["prompts_per_s"],
                "prompts_per_s_vs_peer_without_gc_collect": summary[peer][
                    "median_step_excl_gc_collect_s"
                ]
                / summary[name]["median_step_s"],
                "work": summary[name]["gflop_per_step"] / summary[peer]["gflop_per_step"],
                "achieved_gflops_per_s": summary[name]["achieved_gflops_per_s"]
                / summary[peer]["achieved_gflops_per_s"],
                "per_round_prompts_per_s": [
                    ours["prompts_per_s"] / theirs["prompts_per_s"]
                    for ours, theirs in zip(runs[name], runs[peer], strict=True)
                ],
            }
        record["sizes"][size] = {
            "options": options,
            "gemm": gemm,
            "gemm_peak_gflops_per_s": peak,
            "summary": summary,
            "ratio": ratio,
            "runs": runs,
        }
        rows.append((size, summary, ratio, peak))
    record["versions"] = {
        name: record["sizes"][args.sizes[0]]["runs"][name][0]["versions"] for name in frameworks
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print_tables(rows, frameworks)
    print(f"\nruns: {args.output}")


def summarize(results: list[dict], peak: float) -> dict:
    """Medians over a framework's rounds."""
    median = lambda get: statistics.median(get(r) for r in results)  # noqa: E731
    summary = {
        key: median(lambda r, key=key: r[key])
        for key in ("median_step_s", "prompts_per_s", "generated_tokens_per_s", "peak_rss_mib")
    }
    summary["median_step_excl_gc_collect_s"] = median(
        lambda r: r.get("median_step_excl_gc_collect_s", r["median_step_s"])
    )
    summary["gflop_per_step"] = median(lambda r: r["work"]["gflop_per_step"])
    summary["achieved_gflops_per_s"] = median(lambda r: r["work"]["achieved_gflops_per_s"])
    summary["share_of_gemm_peak"] = summary["achieved_gflops_per_s"] / peak
    summary["median_phase_s"] = {
        key: median(lambda r, key=key: r["median_phase_s"][key])
        for key in results[0]["median_phase_s"]
    }
    summary["achieved_gflops_per_s_by_phase"] = {
        key: median(lambda r, key=key: r["work"]["achieved_gflops_per_s_by_phase"][key])
        for key in results[0]["work"]["achieved_gflops_per_s_by_phase"]
    }
    return summary


def print_tables(rows, frameworks) -> None:
    print("| size | framework | s / step | prompts / s | GFLOP / step | GFLOP/s | share of GEMM "
          "peak | peak RSS (MiB) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for size, summary, ratio, peak in rows:
        for name, (label, _, _, _) in frameworks.items():
            s = summary[name]
            print(
                f"| {size} | {label} | {s['median_step_s']:.3f} | {s['prompts_per_s']:.2f} | "
                f"{s['gflop_per_step']:.2f} | {s['achieved_gflops_per_s']:.1f} | "
                f"{100 * s['share_of_gemm_peak']:.0f} % | {s['peak_rss_mib']:.0f} |"
            )
        print(f"| {size} | GEMM peak (fp32, 1024³) | | | | {peak:.1f} | 100 % | |")
        for name, r in ratio.items():
            print(
                f"| {size} | **{FRAMEWORKS[name][0]} / TRL** | prompts/s "
                f"**{r['prompts_per_s']:.2f}x**"
                f" (TRL without gc.collect: {r['prompts_per_s_vs_peer_without_gc_collect']:.2f}x)"
                f" | work {r['work']:.2f}x | GFLOP/s {r['achieved_gflops_per_s']:.2f}x | | | |"
            )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
