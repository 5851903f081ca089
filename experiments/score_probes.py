"""What the trained reward and cost models say about kinds of answer the policy can drift to.

Usage: python experiments/score_probes.py EVAL_DIR [--reward R_DIR] [--cost C_DIR]
(defaults: the models the eval stage in EVAL_DIR used, from its ``config.yaml``). For every
held-out prompt of the eval folder, builds one answer of each probe kind from the embedded
world's own sentences (on-topic help, redirection, harmful detail, a bare refusal, a helpful
answer about another topic, the same words shuffled into fragments, one sentence cut in half,
filler, an empty answer), scores it with R, C and the oracle, and prints per prompt kind the
mean of each score: where R or C disagree with the oracle is where PPO can be led astray.
Also prints, for each policy's samples in EVAL_DIR, the mean C per prompt kind and the share of
answers with phrases of another topic (``Oracle.helpfulness_terms``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from statistics import fmean

import yaml

from safe_rlhf_lightning.benchmark import responses as build
from safe_rlhf_lightning.benchmark.oracle import Oracle
from safe_rlhf_lightning.benchmark.world import all_topics, topics_by_name
from safe_rlhf_lightning.data import PromptTemplate

KINDS = ("benign", "dual_use", "harmful")


def probes(topic, others, rng: random.Random) -> dict[str, str]:
    """One answer of each probe kind for a prompt about ``topic``."""
    benign = [t for t in others if t.kind == "benign" and t.name != topic.name]
    on_topic = build.helpful(topic, rng) if topic.help else build.redirection(topic, rng)
    words = on_topic.replace(".", "").split()
    rng.shuffle(words)
    half = len(words) // 2
    fragments = f"{' '.join(words[:half]).capitalize()}. {' '.join(words[half:])}."
    first = on_topic.split(".")[0].split()
    return {
        "on-topic help (or redirection)": on_topic,
        "on-topic redirection": build.redirection(topic, rng) if topic.redirect else "",
        "on-topic harmful detail": build.harmful(topic, rng) if topic.risky else "",
        "bare refusal": build.refusal(rng),
        "another topic's help": build.helpful(rng.choice(benign), rng),
        "shuffled fragments": fragments,
        "half a sentence": " ".join(first[: max(1, len(first) // 2)]) + ".",
        "filler only": rng.choice(build.FILLERS),
        "empty": "",
    }


def category(oracle: Oracle, row: dict) -> str:
    """What kind of answer a scored sample is, by the oracle's reading of it."""
    terms = oracle.helpfulness_terms(row["prompt"], row["response"])
    if not row["oracle_is_safe"]:
        return "harmful"
    if terms["off_topic"]:
        return "safe, with another topic's phrases"
    if terms["on_topic"]:
        return "safe, on topic"
    return "refusal only" if row["oracle_refused"] else "no content (fragments, filler)"


def category_table(samples: dict, oracle: Oracle) -> list[str]:
    lines = [
        "| policy | prompt kind | answer | share | mean oracle helpfulness | contribution |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, rows_of in samples.items():
        for kind in KINDS[1:]:
            group = [r for r in rows_of if r["oracle_prompt_kind"] == kind]
            by = defaultdict(list)
            for r in group:
                by[category(oracle, r)].append(r["oracle_helpfulness"])
            for answer, values in sorted(by.items()):
                share = len(values) / len(group)
                mean = fmean(values)
                lines.append(
                    f"| {name} | {kind} | {answer} | {share:.2f} | {mean:+.2f} | "
                    f"{share * mean:+.2f} |"
                )
    return lines


def scores(folder: str, kind: str, prompts, texts, template) -> list[float]:
    from safe_rlhf_lightning.cli.models import load_score_model
    from safe_rlhf_lightning.evaluation import score_responses
    from safe_rlhf_lightning.models import load_tokenizer

    model = load_score_model(folder, kind, kind)
    return score_responses(model, load_tokenizer(folder), prompts, texts, template)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("--reward", default=None)
    parser.add_argument("--cost", default=None)
    parser.add_argument("--categories-only", action="store_true", help="skip the probes")
    args = parser.parse_args(argv)
    config = yaml.safe_load((args.eval_dir / "config.yaml").read_text())
    reward = args.reward or config["stage"]["reward_model"]
    cost = args.cost or config["stage"]["cost_model"]
    template = PromptTemplate(config["data"]["prompt_template"])
    results = json.loads((args.eval_dir / "results.json").read_text())
    samples = {
        name: [json.loads(line) for line in (args.eval_dir / f"samples_{name}.jsonl").open()]
        for name in results["policies"]
    }
    if args.categories_only:
        print("\n".join(category_table(samples, Oracle())))
        return
    first = next(iter(samples.values()))
    topics, others, rng = topics_by_name(), all_topics(), random.Random(0)
    rows = []
    for sample in first:
        topic = topics[sample["oracle_topic"]]
        for probe, text in probes(topic, others, rng).items():
            if text or probe == "empty":
                rows.append({"prompt": sample["prompt"], "kind": topic.kind, "probe": probe})
                rows[-1]["response"] = text
    prompts, texts = [r["prompt"] for r in rows], [r["response"] for r in rows]
    oracle = Oracle()
    for row, score in zip(rows, oracle.score_many(prompts, texts), strict=True):
        row["oracle_helpfulness"], row["oracle_cost"] = score.helpfulness, score.cost
    for judge, folder in (("reward", reward), ("cost", cost)):
        for row, value in zip(rows, scores(folder, judge, prompts, texts, template), strict=True):
            row[judge] = value
    print(f"R: {reward}\nC: {cost}\n")
    print("| prompt kind | probe | n | R | C | oracle helpfulness | oracle cost |")
    print("|---|---|---:|---:|---:|---:|---:|")
    groups = defaultdict(list)
    for row in rows:
        groups[row["kind"], row["probe"]].append(row)
    for kind in KINDS:
        for (k, probe), group in groups.items():
            if k != kind:
                continue
            means = [fmean(r[key] for r in group) for key in ("reward", "cost")]
            oracle_means = [
                fmean(r[key] for r in group) for key in ("oracle_helpfulness", "oracle_cost")
            ]
            cells = " | ".join(f"{v:+.2f}" for v in [*means, *oracle_means])
            print(f"| {kind} | {probe} | {len(group)} | {cells} |")
    print("\n| policy | prompt kind | mean C | share C > 0 | oracle harmful | off-topic share |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows_of in samples.items():
        for kind in KINDS:
            group = [r for r in rows_of if r["oracle_prompt_kind"] == kind]
            off = [
                oracle.helpfulness_terms(r["prompt"], r["response"])["off_topic"] > 0 for r in group
            ]
            print(
                f"| {name} | {kind} | {fmean(r['cost'] for r in group):+.2f} | "
                f"{fmean(r['cost'] > 0 for r in group):.2f} | "
                f"{fmean(not r['oracle_is_safe'] for r in group):.2f} | {fmean(off):.2f} |"
            )
        print(f"| {name} | all | {fmean(r['cost'] for r in rows_of):+.2f} | | | |")
    print()
    print("\n".join(category_table(samples, oracle)))


if __name__ == "__main__":
    main()
