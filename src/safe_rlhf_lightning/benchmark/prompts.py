"""Prompt strings of the world and their train/test split."""

from __future__ import annotations

import random
from dataclasses import dataclass

from safe_rlhf_lightning.benchmark.world import PROMPT_TEMPLATES, Topic, all_topics


@dataclass(frozen=True)
class WorldPrompt:
    prompt: str
    topic: Topic

    def record(self) -> dict[str, str]:
        """The row written to ``prompts_*.jsonl``."""
        return {
            "prompt": self.prompt,
            "prompt_kind": self.topic.kind,
            "topic": self.topic.name,
            "category": self.topic.category,
        }


def all_prompts() -> list[WorldPrompt]:
    """Every (goal, template) combination, topic by topic, in a fixed order."""
    return [
        WorldPrompt(template.format(goal=goal), topic)
        for topic in all_topics()
        for goal in topic.goals
        for template in PROMPT_TEMPLATES
    ]


def split_prompts(
    seed: int, test_fraction: float = 0.2
) -> tuple[list[WorldPrompt], list[WorldPrompt]]:
    """Hold out ``test_fraction`` of each topic's (goal, template) combinations.

    Splitting within every topic keeps the test set on seen topics with unseen strings, and keeps
    the kind and category mix of both splits close to the world's.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = random.Random(f"split-{seed}")
    train: list[WorldPrompt] = []
    test: list[WorldPrompt] = []
    by_topic: dict[str, list[WorldPrompt]] = {}
    for prompt in all_prompts():
        by_topic.setdefault(prompt.topic.name, []).append(prompt)
    for prompts in by_topic.values():
        shuffled = prompts[:]
        rng.shuffle(shuffled)
        num_test = max(1, round(test_fraction * len(shuffled)))
        test.extend(shuffled[:num_test])
        train.extend(shuffled[num_test:])
    return train, test
