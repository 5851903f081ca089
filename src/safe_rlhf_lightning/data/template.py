"""The conversation template that turns a user prompt into model input."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PROMPT_PLACEHOLDER = "{prompt}"

# Upstream safe-rlhf's PROMPT_BEGIN + PROMPT_USER + PROMPT_ASSISTANT, so that checkpoints trained
# there and here read the same text.
DEFAULT_TEMPLATE = "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:"
# Upstream's PROMPT_BEGIN: written once at the start of a multi-turn dialogue, not once per turn.
CONVERSATION_BEGIN = "BEGINNING OF CONVERSATION: "


@dataclass(frozen=True)
class PromptTemplate:
    """How prompts and responses are laid out as text.

    Args:
        template: text around the user prompt; must contain ``{prompt}`` exactly once. Filled
            with ``str.replace`` rather than ``str.format`` because user text may hold braces.
        response_prefix: put before every response (after its leading whitespace is stripped),
            so the boundary between ``ASSISTANT:`` and the response is always the same text.
    """

    template: str = DEFAULT_TEMPLATE
    response_prefix: str = " "

    def __post_init__(self) -> None:
        count = self.template.count(PROMPT_PLACEHOLDER)
        if count != 1:
            raise ValueError(
                f"prompt template must contain {PROMPT_PLACEHOLDER} exactly once, "
                f"found it {count} times in {self.template!r}"
            )

    def format_prompt(self, prompt: str) -> str:
        return self.template.replace(PROMPT_PLACEHOLDER, prompt)

    def format_response(self, response: str) -> str:
        return self.response_prefix + response.lstrip()

    def format_dialogue(
        self, turns: Sequence[tuple[str, str]], prompt: str, *, end_of_response: str = ""
    ) -> str:
        """Earlier ``(prompt, response)`` turns and a new ``prompt`` as one model input.

        Laid out as upstream safe-rlhf's chatbot does: ``CONVERSATION_BEGIN`` once, then per turn
        ``USER: {prompt} ASSISTANT:`` + formatted response + ``end_of_response`` (pass the EOS
        token's text: responses are trained to end with it), e.g. ``BEGINNING OF CONVERSATION:
        USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:``. A template that does not start with
        ``CONVERSATION_BEGIN`` is repeated whole for every turn.
        """
        begin = CONVERSATION_BEGIN if self.template.startswith(CONVERSATION_BEGIN) else ""
        turn = self.template[len(begin) :]
        parts = [begin]
        for earlier_prompt, response in turns:
            parts += [
                turn.replace(PROMPT_PLACEHOLDER, earlier_prompt),
                self.format_response(response),
                end_of_response,
            ]
        parts.append(turn.replace(PROMPT_PLACEHOLDER, prompt))
        return "".join(parts)

    def dialogue_turns(self, prompt: str, *, end_of_response: str) -> int:
        """How many turns a raw ``prompt`` holds in :meth:`format_dialogue`'s layout: 1 for a
        plain prompt, n when it carries n - 1 earlier turns, each closed by ``end_of_response``
        (the EOS token's text) and followed by the next turn's opening (``USER: `` in the
        default template). A dialogue in any other layout (e.g. HH-RLHF's ``Human:`` /
        ``Assistant:`` inside one prompt) counts as one turn: it does not teach the layout in
        which a multi-turn chat renders its history."""
        begin = CONVERSATION_BEGIN if self.template.startswith(CONVERSATION_BEGIN) else ""
        opening = self.template[len(begin) :].split(PROMPT_PLACEHOLDER)[0]
        if not end_of_response or not opening.strip():
            return 1
        return 1 + prompt.count(end_of_response + opening)

    def extract_prompt(self, formatted: str) -> str:
        """The user prompt inside ``formatted`` (the inverse of ``format_prompt``)."""
        before, after = self.template.split(PROMPT_PLACEHOLDER)
        text = formatted.strip()
        if not (text.startswith(before.strip()) and text.endswith(after.strip())):
            raise ValueError(f"{formatted!r} does not follow the prompt template {self.template!r}")
        return text[len(before.strip()) : len(text) - len(after.strip())].strip()
