"""Sampling text from a causal LM (KV-cached Hugging Face ``generate``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.no_grad()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 64,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    batch_size: int = 64,
) -> list[str]:
    """Continue each already-formatted prompt and return only the new text (special tokens removed).

    Prompts are left padded so that every row continues at the same position; the model is put in
    eval mode for the call and restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    texts: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            encoded = tokenizer(
                list(prompts[start : start + batch_size]),
                padding=True,
                padding_side="left",
                return_tensors="pt",
            ).to(device)
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature if do_sample else None,
                top_p=top_p if do_sample else None,
                top_k=0 if do_sample else None,  # no top-k truncation unless the user asks
                repetition_penalty=repetition_penalty,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]  # (b, new)
            texts.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [text.strip() for text in texts]
