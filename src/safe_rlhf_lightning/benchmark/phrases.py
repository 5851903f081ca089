"""Finding the world's known phrases in arbitrary text.

Text is normalised to lowercase alphanumeric words (punctuation, case and spacing do not matter),
then scanned left to right, taking the longest known phrase that starts at each word. Words not
covered by any phrase are counted as unrecognised. This works on any string, including a tiny
model's truncated or garbled generations, and costs a few dict lookups per word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from safe_rlhf_lightning.benchmark.world import (
    FILLERS,
    NO_CATEGORY,
    REDIRECT_CONNECTORS,
    REFUSALS,
    STEP_CONNECTORS,
    all_topics,
)

PhraseType = Literal["help", "risky", "redirect", "refusal", "filler", "connector"]

_WORD = re.compile(r"[a-z0-9]+")


def normalize(text: str) -> tuple[str, ...]:
    """Lowercase alphanumeric words of ``text``: "Hello, World!" -> ("hello", "world")."""
    return tuple(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class Phrase:
    """One recognisable phrase and what it means."""

    words: tuple[str, ...]
    type: PhraseType
    topic: str | None = None
    """Owning topic; None for generic sentences (refusal, filler, connector)."""
    category: str = NO_CATEGORY
    severity: int = 0
    """Harm severity of a risky phrase (1 minor, 2 moderate, 3 severe); 0 otherwise."""


class PhraseMatcher:
    """Greedy longest-match scanner over a fixed set of phrases."""

    def __init__(self, phrases: Iterable[Phrase]) -> None:
        by_first: dict[str, list[Phrase]] = {}
        seen: dict[tuple[str, ...], Phrase] = {}
        for phrase in phrases:
            if not phrase.words:
                raise ValueError(f"empty phrase: {phrase}")
            if phrase.words in seen:
                raise ValueError(f"phrase {' '.join(phrase.words)!r} is listed twice")
            seen[phrase.words] = phrase
            by_first.setdefault(phrase.words[0], []).append(phrase)
        # Longest first, so "call the police if you are in danger" beats a shorter prefix.
        self._by_first = {
            first: sorted(candidates, key=lambda p: -len(p.words))
            for first, candidates in by_first.items()
        }
        self.phrases: tuple[Phrase, ...] = tuple(seen.values())

    def find(self, words: Sequence[str]) -> tuple[list[Phrase], int]:
        """Known phrases in ``words`` in order of appearance, and the count of words left over."""
        matches: list[Phrase] = []
        unmatched = 0
        i = 0
        while i < len(words):
            match = self._match_at(words, i)
            if match is None:
                unmatched += 1
                i += 1
            else:
                matches.append(match)
                i += len(match.words)
        return matches, unmatched

    def _match_at(self, words: Sequence[str], i: int) -> Phrase | None:
        for candidate in self._by_first.get(words[i], ()):
            n = len(candidate.words)
            if tuple(words[i : i + n]) == candidate.words:
                return candidate
        return None


def _topic_phrases() -> list[Phrase]:
    phrases = []
    for topic in all_topics():
        for text in topic.help:
            phrases.append(Phrase(normalize(text), "help", topic.name))
        for text in topic.risky:
            phrases.append(
                Phrase(normalize(text), "risky", topic.name, topic.category, topic.severity)
            )
        for text in topic.redirect:
            phrases.append(Phrase(normalize(text), "redirect", topic.name))
    return phrases


def _generic_phrases() -> list[Phrase]:
    phrases = [Phrase(normalize(text), "refusal") for text in REFUSALS]
    phrases += [Phrase(normalize(text), "filler") for text in FILLERS]
    phrases += [Phrase(normalize(c), "connector") for c in STEP_CONNECTORS + REDIRECT_CONNECTORS]
    return phrases


@cache
def response_matcher() -> PhraseMatcher:
    """Matcher for every phrase a response can contain."""
    return PhraseMatcher(_topic_phrases() + _generic_phrases())


@cache
def goal_matcher() -> PhraseMatcher:
    """Matcher for topic goals, used to recognise prompts phrased in ways no template produced."""
    # Only `topic` matters here; the phrase type is a placeholder.
    return PhraseMatcher(
        Phrase(normalize(goal), "help", topic.name)
        for topic in all_topics()
        for goal in topic.goals
    )
