"""Causal language models: the tiny embedded default, or any Hugging Face causal LM."""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .tokenizer import EOS_TOKEN, PAD_TOKEN

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


SFT_DIALOGUE_TURNS = "sft_dialogue_turns"
"""Key of a policy's ``config.json`` written by the SFT stage: the most dialogue turns of any
example it was trained on (1: single prompt-response examples). Later stages load the policy
with its config and save it again, so the key travels into their folders; a chat keeps the
dialogue history in the prompt only for a model whose key is above 1."""


def sft_dialogue_turns(config: Any) -> int | None:
    """``config``'s :data:`SFT_DIALOGUE_TURNS` (None: not recorded, e.g. a hub model)."""
    turns = getattr(config, SFT_DIALOGUE_TURNS, None)
    return int(turns) if turns is not None else None


def build_tiny_causal_lm(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 384,
    max_position_embeddings: int = 512,
    tie_word_embeddings: bool = True,
    seed: int = 0,
) -> LlamaForCausalLM:
    """A randomly initialised Llama-architecture model sized to ``tokenizer``.

    The seed makes the initial weights reproducible independently of the global RNG.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    log.info("built a tiny Llama with %.2fM parameters", model.num_parameters() / 1e6)
    return model


def load_causal_lm(
    name_or_path: str, *, trust_remote_code: bool = False, dtype: str = "float32"
) -> PreTrainedModel:
    """Load any Hugging Face causal LM by hub name or local folder (safetensors preferred)."""
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return AutoModelForCausalLM.from_pretrained(
        name_or_path,
        trust_remote_code=trust_remote_code,
        dtype=DTYPES[dtype],
        use_safetensors=None,  # prefer safetensors, fall back to a weights_only torch load
    )


def add_missing_special_tokens(
    tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel
) -> list[str]:
    """Give the tokenizer a pad (and EOS) token when it lacks one, and grow the embeddings.

    New embedding rows (input and output) are set to the mean of the existing rows, as upstream
    safe-rlhf does, so that the new token starts as an "average" token rather than a random one.
    Returns the names of the special tokens that were added.
    """
    added: dict[str, str] = {}
    if tokenizer.eos_token is None:
        added["eos_token"] = EOS_TOKEN
    if tokenizer.pad_token is None:
        added["pad_token"] = PAD_TOKEN
    if added:
        tokenizer.add_special_tokens(added)
    old_size = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > old_size:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        _fill_new_rows_with_mean(model, old_size)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    if added:
        log.info("added special tokens %s; vocabulary is now %d", added, len(tokenizer))
    return list(added)


@torch.no_grad()
def _fill_new_rows_with_mean(model: PreTrainedModel, old_size: int) -> None:
    embeddings = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not embeddings[0]:
        embeddings.append(output.weight)
    for weight in embeddings:
        weight[old_size:] = weight[:old_size].mean(dim=0, keepdim=True)
