"""Matrix-product FLOPs of one RLHF step on Llama-style models, counted from the shapes.

Pure arithmetic (no torch), so ``compare_ppo.py`` can count the work of a step of either
framework from the shapes its run reports. A multiply-add is 2 FLOPs. Counted: the linear layers
(q, k, v, o projections; the MLP's gate, up and down), the attention products (Q·Kᵀ and the
weighted sum of V, over every key position a kernel with a mask computes: all ``keys`` of them,
not half for causality) and the output head (the LM head or a score head) at the positions where
it runs. Not counted: embeddings (a lookup), norms, rotary, softmax, activations, the loss and
the optimizer (elementwise work). A backward pass is counted as twice its forward (a gradient for
the inputs and one for the weights of every product), so training costs ``TRAIN_FACTOR`` forward
passes.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAIN_FACTOR = 3
"""Forward (1) plus backward (2) of a pass whose weights are trained."""


@dataclass(frozen=True)
class LlamaShape:
    """The sizes of a Llama-style decoder that decide its matrix products."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    kv_heads: int | None = None
    """Key/value heads (grouped-query attention); None: as many as ``heads``."""

    @property
    def kv_width(self) -> int:
        return (self.kv_heads or self.heads) * (self.hidden // self.heads)


def forward_flops(
    shape: LlamaShape,
    rows: int,
    tokens: int,
    keys: int,
    head_positions: int,
    head_outputs: int,
) -> int:
    """FLOPs of one forward pass over ``rows`` sequences of ``tokens`` new positions each.

    Each position attends to ``keys`` positions (``tokens`` for a whole-sequence pass; the cache
    length plus one for a decoding step); the output head, ``hidden -> head_outputs`` (the vocab
    for an LM head, 1 or 2 for a score head), runs at ``head_positions`` positions per row.
    """
    h, kv = shape.hidden, shape.kv_width
    linear = 2 * h * (2 * h + 2 * kv) + 2 * 3 * h * shape.intermediate  # per token and layer
    attention = 2 * 2 * tokens * keys * h  # Q·Kᵀ and P·V, all heads, per layer
    per_row = shape.layers * (tokens * linear + attention) + 2 * head_positions * h * head_outputs
    return rows * per_row


def sequence_flops(
    shape: LlamaShape, rows: int, length: int, head_positions: int, head_outputs: int
) -> int:
    """A pass over whole sequences of ``length`` tokens (scoring, log-probs, training)."""
    return forward_flops(shape, rows, length, length, head_positions, head_outputs)


def generation_flops(shape: LlamaShape, rows: int, prompt: int, new_tokens: int) -> int:
    """Sampling ``new_tokens`` tokens after prompts of width ``prompt`` with a KV cache: the
    prompt's pass (LM head at its last position only), then one single-token step per further
    token, the step that makes token ``t + 1`` attending to ``prompt + t`` positions."""
    total = forward_flops(shape, rows, prompt, prompt, 1, shape.vocab)
    for t in range(1, new_tokens):
        total += forward_flops(shape, rows, 1, prompt + t, 1, shape.vocab)
    return total


def ours_step_flops(
    shape: LlamaShape,
    rows: int,
    prompt: int,
    response: int,
    *,
    epochs: int,
    critics: int,
    critic_heads: int = 1,
    cost_model: bool = True,
    logprobs_pass: bool = False,
) -> dict[str, int]:
    """This project's PPO-Lagrangian step, per phase: ``rows`` responses of width ``response``
    after prompts of width ``prompt``; ``critics`` critic backbones (2: V_R and V_C; 1: a shared
    critic with ``critic_heads`` 2; 0: a group baseline such as GRPO); ``logprobs_pass``: the
    actor's old log-probs from a pass of their own instead of the sampling pass. Log-prob passes
    run the LM head at the ``response + 1`` last positions."""
    length = prompt + response
    logprobs = sequence_flops(shape, rows, length, response + 1, shape.vocab)
    score = sequence_flops(shape, rows, length, length, 1)
    critic = sequence_flops(shape, rows, length, length, critic_heads)
    scoring = (1 + logprobs_pass) * logprobs + (1 + cost_model) * score + critics * critic
    updates = epochs * TRAIN_FACTOR * (logprobs + critics * critic)
    return {
        "generation": generation_flops(shape, rows, prompt, response),
        "scoring": scoring,
        "updates": updates,
    }


def trl_ppo_step_flops(
    shape: LlamaShape, rows: int, prompt: int, response: int, *, epochs: int
) -> dict[str, int]:
    """TRL's PPOTrainer step (1.12): old log-probs from the sampling scores; the reference,
    value and reward passes; each update trains policy and value. Its policy and reference passes
    run the LM head at every position (``forward`` keeps all logits, then slices)."""
    length = prompt + response
    logprobs = sequence_flops(shape, rows, length, length, shape.vocab)
    score = sequence_flops(shape, rows, length, length, 1)
    return {
        "generation": generation_flops(shape, rows, prompt, response),
        "scoring": logprobs + 2 * score,
        "updates": epochs * TRAIN_FACTOR * (logprobs + score),
    }


def trl_grpo_step_flops(
    shape: LlamaShape,
    rows: int,
    prompt: int,
    response: int,
    *,
    reward_length: int,
    iterations: int,
    old_logprobs_pass: bool,
    reference: bool,
) -> dict[str, int]:
    """TRL's GRPOTrainer over one generation batch (1.12): the old log-probs pass when updates
    are off-policy (``old_logprobs_pass``), the reference pass when β > 0, the reward model on the
    re-tokenized texts (``reward_length`` tokens wide), and ``iterations`` passes of training the
    policy. Log-prob passes keep the logits of the ``response + 1`` last positions."""
    length = prompt + response
    logprobs = sequence_flops(shape, rows, length, response + 1, shape.vocab)
    reward = sequence_flops(shape, rows, reward_length, reward_length, 1)
    return {
        "generation": generation_flops(shape, rows, prompt, response),
        "scoring": (old_logprobs_pass + reference) * logprobs + reward,
        "updates": iterations * TRAIN_FACTOR * logprobs,
    }
