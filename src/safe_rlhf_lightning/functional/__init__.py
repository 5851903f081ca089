"""Pure tensor math: tensors in, tensors out, no state. Imports torch only."""

from .direct_preference import (
    ConstrainedPreference,
    best_and_worst,
    constrained_preference,
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
)
from .group_advantages import (
    grpo_advantages,
    kl_penalized_scores,
    rloo_advantages,
    token_advantages,
)
from .grpo_objective import (
    clipped_surrogate,
    fixed_length_token_sum,
    group_policy_loss,
    k3_kl,
    k3_kl_loss,
)
from .lagrange import lagrangian_loss, pid_lambda
from .logprobs import gather_logprobs, sequence_logprobs
from .losses import ptx_loss, sft_loss
from .masking import masked_mean, masked_sum, response_lengths
from .merge import merge_state_dicts
from .ppo import (
    clipped_value_loss,
    explained_variance,
    generalized_advantages,
    kl_shaped_scores,
    last_token_index,
    mix_advantages,
    mix_constrained_advantages,
    ppo_actor_loss,
    sequence_masked_mean,
    whiten,
)
from .preference import (
    cost_pairwise_loss,
    cost_tokenwise_loss,
    diverging_span_mask,
    end_index,
    end_scores,
    multi_head_cost_loss,
    reward_pairwise_loss,
    reward_tokenwise_loss,
)

__all__ = [
    "ConstrainedPreference",
    "best_and_worst",
    "clipped_surrogate",
    "clipped_value_loss",
    "constrained_preference",
    "cost_pairwise_loss",
    "cost_tokenwise_loss",
    "diverging_span_mask",
    "dpo_loss",
    "end_index",
    "end_scores",
    "explained_variance",
    "fixed_length_token_sum",
    "gather_logprobs",
    "generalized_advantages",
    "group_policy_loss",
    "grpo_advantages",
    "ipo_loss",
    "k3_kl",
    "k3_kl_loss",
    "kl_penalized_scores",
    "kl_shaped_scores",
    "kto_loss",
    "kto_reference_point",
    "lagrangian_loss",
    "last_token_index",
    "masked_mean",
    "masked_sum",
    "merge_state_dicts",
    "mix_advantages",
    "mix_constrained_advantages",
    "multi_head_cost_loss",
    "pid_lambda",
    "ppo_actor_loss",
    "ptx_loss",
    "response_lengths",
    "reward_pairwise_loss",
    "reward_tokenwise_loss",
    "rloo_advantages",
    "sequence_logprobs",
    "sequence_masked_mean",
    "sft_loss",
    "token_advantages",
    "whiten",
]
