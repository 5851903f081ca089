"""Building responses of each type from the world's phrases.

Every builder takes a topic and an explicit `random.Random`, so the same seed gives the same text.
Two samplers sit on top: `sample_demonstration` (Alpaca-like SFT answers: helpful to everyone,
so a bit over half of harmful prompts get harmful detail) and `sample_preference_response` (a
broad mix of all answer types, for preference pairs the reward and cost models learn from).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from safe_rlhf_lightning.benchmark.world import (
    FILLERS,
    REDIRECT_CONNECTORS,
    REFUSALS,
    STEP_CONNECTORS,
    Topic,
)

# Share of harmful prompts whose demonstration is harmful (the paper's Alpaca-7B: 53%).
DEMO_HARMFUL_SHARE = 0.55
# Share of dual-use demonstrations that include some risky detail.
DEMO_DUAL_USE_RISKY_SHARE = 0.8
DEMO_FILLER_SHARE = 0.15
COMPLIANCE_OPENER = "Sure, here is what you can do."


def sentence(phrase: str) -> str:
    return phrase[0].upper() + phrase[1:] + "."


def render_steps(phrases: Sequence[str], rng: random.Random) -> str:
    """Steps as sentences, with "First, ... Next, ... Finally, ..." connectors most of the time."""
    if len(phrases) == 1 or rng.random() < 0.25:
        return " ".join(sentence(p) for p in phrases)
    middle = [c for c in STEP_CONNECTORS if c not in ("First", "Finally")]
    connectors = ["First"] + [rng.choice(middle) for _ in phrases[1:-1]] + ["Finally"]
    if len(phrases) == 2:
        connectors = ["First", rng.choice(("Then", "Next", "Also"))]
    return " ".join(f"{c}, {p}." for c, p in zip(connectors, phrases, strict=True))


def render_redirects(phrases: Sequence[str], rng: random.Random) -> str:
    """Safety information, sometimes introduced with "Instead," and similar openers."""
    if rng.random() < 0.5:
        return " ".join(sentence(p) for p in phrases)
    first = f"{rng.choice(REDIRECT_CONNECTORS)}, {phrases[0]}."
    return " ".join([first, *(sentence(p) for p in phrases[1:])])


def _subset(phrases: Sequence[str], rng: random.Random, low: int, high: int) -> list[str]:
    """A random subset of ``low``..``high`` phrases, kept in table order (steps have an order)."""
    high = min(high, len(phrases))
    size = rng.randint(min(low, high), high)
    picked = sorted(rng.sample(range(len(phrases)), size))
    return [phrases[i] for i in picked]


def refusal(rng: random.Random) -> str:
    return rng.choice(REFUSALS)


def helpful(topic: Topic, rng: random.Random, low: int = 2, high: int = 4) -> str:
    """Safe on-topic steps (benign and dual-use topics)."""
    return render_steps(_subset(topic.help, rng, low, high), rng)


def harmful(topic: Topic, rng: random.Random, low: int = 1, high: int = 3) -> str:
    """Risky operational detail; on dual-use topics mixed into safe steps."""
    risky = _subset(topic.risky, rng, low, high)
    if topic.kind == "dual_use":
        steps = _subset(topic.help, rng, 1, 2) + risky
        rng.shuffle(steps)
        return render_steps(steps, rng)
    return render_steps(risky, rng)


def redirection(topic: Topic, rng: random.Random, *, refuse_first: bool = False) -> str:
    """Safe alternative or safety information; dual-use topics add safe steps first."""
    parts = [refusal(rng)] if refuse_first else []
    if topic.kind == "dual_use":
        parts.append(helpful(topic, rng, 1, 3))
    parts.append(render_redirects(_subset(topic.redirect, rng, 1, 2), rng))
    return " ".join(parts)


def partially_harmful(topic: Topic, rng: random.Random) -> str:
    """One risky detail followed by safety information: unsafe despite the caveat."""
    return (
        f"{harmful(topic, rng, 1, 1)} {render_redirects(_subset(topic.redirect, rng, 1, 1), rng)}"
    )


def ideal(topic: Topic) -> str:
    """The best safe answer: every help step, plus every redirection where there is risk."""
    rng = random.Random(0)  # fixed rendering: the ideal answer is a reference, not a sample
    parts = [render_steps(topic.help, rng)] if topic.help else []
    if topic.redirect:
        parts.append(" ".join(sentence(p) for p in topic.redirect))
    return " ".join(parts)


def with_filler(text: str, rng: random.Random) -> str:
    filler = rng.choice(FILLERS)
    return f"{filler} {text}" if rng.random() < 0.7 else f"{text} {filler}"


def repeated(text: str, rng: random.Random) -> str:
    """A degenerate answer that repeats one of its sentences, as small models do."""
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    return " ".join([*sentences, *[rng.choice(sentences)] * rng.randint(1, 2)])


def sample_demonstration(topic: Topic, rng: random.Random) -> str:
    """One Alpaca-like SFT demonstration: helpful first, safe only sometimes."""
    if topic.kind == "benign":
        text = helpful(topic, rng, 2, 4)
        return with_filler(text, rng) if rng.random() < DEMO_FILLER_SHARE else text
    if topic.kind == "dual_use":
        if rng.random() < DEMO_DUAL_USE_RISKY_SHARE:
            return harmful(topic, rng, 1, 2)
        return redirection(topic, rng)
    draw = rng.random()
    if draw < DEMO_HARMFUL_SHARE:
        text = harmful(topic, rng, 2, 3)
        return f"{COMPLIANCE_OPENER} {text}" if rng.random() < 0.3 else text
    if draw < DEMO_HARMFUL_SHARE + 0.3:
        return redirection(topic, rng, refuse_first=rng.random() < 0.5)
    return refusal(rng)


Builder = Callable[[Topic, random.Random, Sequence[Topic]], str]

# Preference-pair response mix per prompt kind: (weight, builder). `others` are other topics,
# for off-topic answers. The weights cover every type so the reward and cost models see
# contrasts between all of them.
_PREFERENCE_MIX: dict[str, list[tuple[float, Builder]]] = {
    "benign": [
        (0.35, lambda t, r, o: helpful(t, r, 1, 4)),
        (0.15, lambda t, r, o: with_filler(helpful(t, r, 1, 3), r)),
        (0.15, lambda t, r, o: refusal(r)),
        (0.10, lambda t, r, o: sample_off_topic(r, o)),
        (0.10, lambda t, r, o: repeated(helpful(t, r, 1, 2), r)),
        (0.10, lambda t, r, o: r.choice(FILLERS)),
        (0.05, lambda t, r, o: f"{refusal(r)} {helpful(t, r, 1, 2)}"),
    ],
    "dual_use": [
        (0.15, lambda t, r, o: helpful(t, r, 1, 3)),
        (0.15, lambda t, r, o: redirection(t, r)),
        (0.20, lambda t, r, o: harmful(t, r, 1, 2)),
        (0.10, lambda t, r, o: partially_harmful(t, r)),
        (0.10, lambda t, r, o: redirection(t, r, refuse_first=True)),
        (0.10, lambda t, r, o: refusal(r)),
        (0.08, lambda t, r, o: with_filler(harmful(t, r, 1, 2), r)),
        (0.06, lambda t, r, o: sample_off_topic(r, o)),
        (0.06, lambda t, r, o: repeated(helpful(t, r, 1, 2), r)),
    ],
    "harmful": [
        (0.25, lambda t, r, o: harmful(t, r, 1, 3)),
        (0.12, lambda t, r, o: partially_harmful(t, r)),
        (0.18, lambda t, r, o: redirection(t, r)),
        (0.12, lambda t, r, o: redirection(t, r, refuse_first=True)),
        (0.12, lambda t, r, o: refusal(r)),
        (0.08, lambda t, r, o: with_filler(harmful(t, r, 1, 2), r)),
        (0.06, lambda t, r, o: sample_off_topic(r, o)),
        (0.07, lambda t, r, o: repeated(harmful(t, r, 1, 2), r)),
    ],
}


def sample_off_topic(rng: random.Random, others: Sequence[Topic]) -> str:
    """A fluent answer about some other topic, harmful or not."""
    other = rng.choice(others)
    if other.kind == "harmful" or (other.kind == "dual_use" and rng.random() < 0.5):
        return harmful(other, rng, 1, 2)
    return helpful(other, rng, 1, 3)


def sample_preference_response(topic: Topic, rng: random.Random, others: Sequence[Topic]) -> str:
    """One response from the broad mix used for preference pairs."""
    weights, builders = zip(*_PREFERENCE_MIX[topic.kind], strict=True)
    builder = rng.choices(builders, weights=weights)[0]
    return builder(topic, rng, [t for t in others if t.name != topic.name])
