"""Per-token log-probabilities of a causal LM."""

from __future__ import annotations

from torch import Tensor


def gather_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """Log-probability of each next token under the model.

    Args:
        logits: (B, L, V) outputs of a causal LM on ``input_ids``.
        input_ids: (B, L) the token ids the logits were computed on.

    Returns:
        (B, L - 1): entry ``t`` is log p(input_ids[:, t + 1] | input_ids[:, : t + 1]).
    """
    # log_softmax in float32: half-precision logits lose the small probabilities PPO ratios need.
    logprobs = logits[:, :-1].float().log_softmax(dim=-1)
    return logprobs.gather(dim=-1, index=input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def sequence_logprobs(logits: Tensor, input_ids: Tensor, token_mask: Tensor) -> Tensor:
    """Summed log-probability of the masked tokens of each sequence: log π(y|x) for DPO.

    Args:
        logits: (B, L, V) outputs of a causal LM on ``input_ids``.
        input_ids: (B, L) the token ids the logits were computed on.
        token_mask: (B, L) bool, True on the tokens whose log-probabilities are summed (a
            response's); position 0 has no prediction and must be False.

    Returns:
        (B,) float32.
    """
    token_logprobs = gather_logprobs(logits, input_ids)  # (B, L - 1), predicts tokens 1..L-1
    return (token_logprobs * token_mask[:, 1:]).sum(dim=-1)
