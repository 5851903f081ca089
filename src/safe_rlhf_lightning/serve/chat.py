"""A chatbot around a causal LM: dialogue state and prompt building, no terminal I/O. Each
message is answered on its own unless the model was trained on multi-turn dialogues (or the
caller asks for the history): a model that never saw a dialogue degrades from its second turn
on when the earlier turns are in its prompt."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data import PromptTemplate
from ..models import generate_texts, sft_dialogue_turns

log = logging.getLogger(__name__)


class ChatError(ValueError):
    """A request the chatbot cannot serve (nothing to regenerate, a message too long)."""


class Turn(NamedTuple):
    prompt: str
    response: str


@dataclass(frozen=True)
class GenerationSettings:
    """How every answer is sampled.

    Args:
        max_new_tokens: the longest answer, in tokens.
        temperature: 0 means greedy decoding (as upstream's chatbot: sampling iff > 0).
        top_p: nucleus sampling mass.
        repetition_penalty: 1.0 is none.
        seed: when set, the n-th generation of a chatbot uses seed ``seed + n`` in a forked RNG,
            so a scripted session gives the same answers again, and one model's answers do not
            depend on the other model's in the arena. ``None`` uses the global RNG.
    """

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None


class Chatbot:
    """A dialogue with one model, rendered as upstream safe-rlhf's chatbot renders it.

    Args:
        model, tokenizer: the policy (any Hugging Face causal LM) and its tokenizer.
        template: the conversation layout; see :meth:`PromptTemplate.format_dialogue`.
        settings: the sampling settings.
        context_length: the most tokens the model reads; defaults to the model's
            ``max_position_embeddings``. When the dialogue plus ``max_new_tokens`` would not
            fit, the oldest whole turns are dropped (with a warning).
        history: put the earlier turns of the dialogue into each prompt (multi-turn). None
            decides by the model: only when its SFT data held multi-turn dialogues
            (``sft_dialogue_turns`` > 1 in its config, see
            :data:`~safe_rlhf_lightning.models.SFT_DIALOGUE_TURNS`); otherwise, and when the
            config does not say, each message is answered on its own with the single-turn
            prompt the model was trained on. The turns are kept either way (``/regenerate``).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        template: PromptTemplate | None = None,
        settings: GenerationSettings | None = None,
        context_length: int | None = None,
        history: bool | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.template = template or PromptTemplate()
        self.settings = settings or GenerationSettings()
        self.context_length = context_length or getattr(
            model.config, "max_position_embeddings", None
        )
        if self.context_length is not None and self.prompt_budget < 1:
            raise ValueError(
                f"max_new_tokens={self.settings.max_new_tokens} leaves no room for a prompt in "
                f"the model's {self.context_length} positions"
            )
        turns = sft_dialogue_turns(model.config)
        self.keeps_history = history if history is not None else (turns or 1) > 1
        self._turns: list[Turn] = []
        self._generations = 0

    @property
    def history(self) -> tuple[Turn, ...]:
        return tuple(self._turns)

    @property
    def prompt_budget(self) -> int | None:
        """The most prompt tokens that leave room for ``max_new_tokens``; None if unbounded."""
        if self.context_length is None:
            return None
        return self.context_length - self.settings.max_new_tokens

    def prompt_text(self, text: str) -> str:
        """The model input for ``text``: after the current history when it is kept (nothing is
        dropped here), else ``text`` alone in the single-turn template."""
        return self._render(self._context(), text)

    def _context(self) -> list[Turn]:
        return self._turns if self.keeps_history else []

    def reply(self, text: str) -> str:
        """Answer ``text`` and add the turn to the history.

        Raises :class:`ChatError` when ``text`` alone does not fit the context.
        """
        self._drop_oldest_turns_to_fit(text)
        response = self._generate(self.prompt_text(text))
        self._turns.append(Turn(text, response))
        return response

    def regenerate(self) -> str:
        """Answer the last user message again, replacing the last answer."""
        if not self._turns:
            raise ChatError("nothing to regenerate: the dialogue is empty")
        last = self._turns.pop()
        try:
            return self.reply(last.prompt)
        except BaseException:  # Ctrl-C while generating keeps the old answer
            self._turns.append(last)
            raise

    def reset(self) -> None:
        self._turns.clear()

    def _render(self, turns: list[Turn], text: str) -> str:
        eos = self.tokenizer.eos_token or ""
        return self.template.format_dialogue(turns, text, end_of_response=eos)

    def _num_tokens(self, text: str) -> int:
        # Counted as generate_texts encodes it (with BOS where the tokenizer adds one).
        return len(self.tokenizer(text).input_ids)

    def _drop_oldest_turns_to_fit(self, text: str) -> None:
        budget = self.prompt_budget
        if budget is None:
            return
        context = self._context()
        for dropped in range(len(context) + 1):
            if self._num_tokens(self._render(context[dropped:], text)) <= budget:
                break
        else:
            raise ChatError(
                f"the message is too long: it needs more than the {budget} prompt tokens left "
                f"after max_new_tokens={self.settings.max_new_tokens} in a context of "
                f"{self.context_length}"
            )
        if dropped:
            log.warning(
                "the dialogue is longer than %d prompt tokens: dropped the oldest %d turn(s)",
                budget,
                dropped,
            )
            del self._turns[:dropped]

    def _generate(self, prompt: str) -> str:
        settings = self.settings
        seed = None if settings.seed is None else settings.seed + self._generations
        self._generations += 1
        device = next(self.model.parameters()).device
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            [response] = generate_texts(
                self.model,
                self.tokenizer,
                [prompt],
                max_new_tokens=settings.max_new_tokens,
                do_sample=settings.temperature > 0,
                temperature=settings.temperature,
                top_p=settings.top_p,
                repetition_penalty=settings.repetition_penalty,
            )
        return response
