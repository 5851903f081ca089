"""Rollouts of PPO: sample responses with the actor, then score them with every other model.

A rollout's sequences are the prompt (left padded to a common length P, as the prompt collator
makes them) followed by the response (right padded after its EOS). Per-token tensors cover the T
response positions only: position ``t`` is the ``t``-th generated token, predicted from
everything before it. Every forward pass numbers positions over valid tokens only, as ``generate``
does, so that the left padding of prompts changes nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .functional import gather_logprobs
from .models import ScoreModel, decode
from .types import PromptBatch


class Rollout(NamedTuple):
    """Sampled responses and everything computed from them before the PPO update."""

    input_ids: Tensor  # (B, P + T) prompt (left padded) + response (right padded)
    attention_mask: Tensor  # (B, P + T) bool
    response_mask: Tensor  # (B, T) bool: generated tokens up to and including EOS
    logprobs: Tensor  # (B, T) under the actor at sampling time (the "old" policy)
    ref_logprobs: Tensor  # (B, T) under the frozen reference policy
    reward: Tensor  # (B,) end score of the reward model R
    cost: Tensor  # (K, B) end cost of each constraint (zeros when it has no scorer)
    reward_values: (
        Tensor | None
    )  # (B, T) reward critic V_R (or the only critic); None without critics
    # S × (B, T): the cost critic V_Ck of each two-stream constraint; None without any
    cost_values: tuple[Tensor, ...] | None

    @property
    def prompt_length(self) -> int:
        return self.input_ids.shape[1] - self.response_mask.shape[1]


class SamplingOptions(NamedTuple):
    """Sampling settings of a rollout (the PPO stage builds them from its config)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_return_sequences: int = 1


def sampling_options(config: Any) -> SamplingOptions:
    """The rollouts' sampling settings of a PPO stage config (``PPOLagStageConfig``)."""
    return SamplingOptions(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        num_return_sequences=config.num_return_sequences,
    )


def response_mask_until_eos(response_ids: Tensor, eos_token_id: int) -> Tensor:
    """(B, T) bool: True on each generated token up to and including the first EOS.

    Works when the pad token is the EOS token: everything after the first EOS is padding.
    """
    is_eos = response_ids == eos_token_id
    eos_before = is_eos.long().cumsum(dim=-1) - is_eos.long()  # EOS strictly before t
    return eos_before == 0


def position_ids(attention_mask: Tensor) -> Tensor:
    """(B, L) positions counted over valid tokens only (0 on left padding)."""
    return (attention_mask.long().cumsum(dim=-1) - 1).clamp(min=0)


@torch.no_grad()
def sample(
    actor: PreTrainedModel,
    prompts: PromptBatch,
    options: SamplingOptions,
    *,
    eos_token_id: int,
    pad_token_id: int,
    return_logprobs: bool = False,
) -> tuple[Tensor, ...]:
    """Sample ``num_return_sequences`` responses per prompt (KV-cached ``models.decode``).

    Returns ``(input_ids, attention_mask, response_mask)`` of shapes (B·k, P + T), (B·k, P + T)
    and (B·k, T); rows of the same prompt are adjacent. ``return_logprobs`` adds the (B·k, T)
    log-probabilities of the sampled tokens from the decoding pass itself.
    """
    k = options.num_return_sequences
    prompt_ids = prompts.input_ids.repeat_interleave(k, dim=0)  # (B·k, P)
    prompt_mask = prompts.attention_mask.repeat_interleave(k, dim=0)
    response_ids = decode(
        actor,
        prompt_ids,
        prompt_mask,
        max_new_tokens=options.max_new_tokens,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        temperature=options.temperature,
        top_p=options.top_p,
        repetition_penalty=options.repetition_penalty,
        return_logprobs=return_logprobs,
    )  # (B·k, T)
    response_ids, logprobs = response_ids if return_logprobs else (response_ids, None)
    response_mask = response_mask_until_eos(response_ids, eos_token_id)
    input_ids = torch.cat([prompt_ids, torch.where(response_mask, response_ids, pad_token_id)], 1)
    attention_mask = torch.cat([prompt_mask.bool(), response_mask], dim=1)
    if return_logprobs:
        return input_ids, attention_mask, response_mask, logprobs
    return input_ids, attention_mask, response_mask


def response_logprobs(
    model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, prompt_length: int
) -> Tensor:
    """(B, T) log-probabilities of the response tokens (with gradient if the model has one)."""
    # Only the T + 1 last positions (those that predict response tokens, and the last one) reach
    # the LM head: it is a large share of a small model's compute, and of the memory of the logits.
    start = prompt_length - 1
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
        logits_to_keep=input_ids.shape[1] - start,
    ).logits  # (B, T + 1, V)
    return gather_logprobs(logits, input_ids[:, start:])


def response_values(
    critic: ScoreModel, input_ids: Tensor, attention_mask: Tensor, prompt_length: int
) -> Tensor:
    """(B, T, D) the critic's D values of the state before each response token."""
    scores = critic(input_ids, attention_mask).scores  # (B, P + T, D)
    return scores[:, prompt_length - 1 : -1]


class Retokenizer:
    """Re-encodes rollouts for a score model whose tokenizer differs from the actor's.

    The text (special tokens dropped) is encoded again with the score model's tokenizer and its
    EOS appended, as upstream safe-rlhf does before scoring.
    """

    def __init__(
        self, source: PreTrainedTokenizerBase, target: PreTrainedTokenizerBase, max_length: int
    ) -> None:
        self.source, self.target, self.max_length = source, target, max_length

    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        rows = [ids[mask] for ids, mask in zip(input_ids, attention_mask.bool(), strict=True)]
        texts = self.source.batch_decode(rows, skip_special_tokens=True)
        eos = self.target.eos_token or ""
        encoded = self.target(
            [text + eos for text in texts],
            padding=True,
            padding_side="right",
            truncation=True,
            max_length=self.max_length,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(input_ids.device)
        return encoded["input_ids"], encoded["attention_mask"].bool()


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether token ids mean the same in both (same vocabulary and special tokens)."""
    return a.get_vocab() == b.get_vocab() and a.eos_token_id == b.eos_token_id


def end_score(
    model: ScoreModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    retokenize: Retokenizer | None = None,
) -> Tensor:
    """(B,) the model's score of each whole sequence, at its last attended token."""
    return end_scores(model, input_ids, attention_mask, retokenize)[:, 0]


def end_scores(
    model: ScoreModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    retokenize: Retokenizer | None = None,
) -> Tensor:
    """(B, D) every score of a D-head model for each whole sequence, at its last attended
    token."""
    if retokenize is not None:
        input_ids, attention_mask = retokenize(input_ids, attention_mask)
    return model(input_ids, attention_mask).end_scores
