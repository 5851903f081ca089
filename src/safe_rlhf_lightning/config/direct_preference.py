"""Schemas of the RL-free stages (DESIGN.md §6): ``dpo`` (DPO, IPO or KTO on one preference axis
of the data, SACPO's steps) and ``cdpo`` (constrained DPO on the policy's own samples, relabelled
by the learned R and C). Both train a policy against a frozen reference with the same loss
options, defined once in :class:`DirectPreferenceStageConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .checks import _check
from .stages import ROUND_DIR, SFT_POLICY, PolicyStageConfig


@dataclass(frozen=True)
class DirectPreferenceStageConfig(PolicyStageConfig):
    """What every direct-preference stage shares: the policy it starts from, the frozen
    reference and the preference loss on (chosen, rejected) pairs."""

    lr: float = 1e-4
    """Far below SFT's: DPO moves a policy that already writes the benchmark's sentences."""
    eval_limit: Optional[int] = 300
    evaluate_before_training: bool = False
    """The starting policy's oracle figures are its own stage's (same prompts and seed)."""
    init_from: str = SFT_POLICY
    """The policy to train: the SFT policy by default; SACPO's safety step starts from the
    helpfulness step's ``model`` folder."""
    reference_init: str = "${stage.init_from}"
    """The frozen reference π_ref of the implicit reward: the starting policy by default."""
    loss_type: str = "dpo"
    """dpo (Rafailov et al. 2023, with cDPO's label smoothing), ipo (Azar et al. 2023) or kto
    (Ethayarajh et al. 2024: chosen responses desirable, rejected undesirable)."""
    beta: float = 0.1
    """β: the weight of the KL to π_ref in the objective (smaller moves further from it).
    0.1 is DPO's usual value (Rafailov et al. 2023) and SACPO's helpfulness step's (Wachi et
    al. 2024); SACPO's safety step uses β/λ (the paper's knob) as its own β."""
    label_smoothing: float = 0.0
    """cDPO's ε, the assumed rate of flipped labels (dpo only; 0 = plain DPO)."""
    kto_desirable_weight: float = 1.0
    """KTO's λ_D, the weight of the chosen (desirable) responses."""
    kto_undesirable_weight: float = 1.0
    """KTO's λ_U, the weight of the rejected (undesirable) responses."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.loss_type in {"dpo", "ipo", "kto"},
            "stage.loss_type",
            "dpo, ipo or kto",
            self.loss_type,
        )
        _check(self.beta > 0, "stage.beta", "> 0", self.beta)
        _check(
            0 <= self.label_smoothing < 0.5,
            "stage.label_smoothing",
            "in [0, 0.5)",
            self.label_smoothing,
        )
        for key in ("kto_desirable_weight", "kto_undesirable_weight"):
            _check(getattr(self, key) > 0, f"stage.{key}", "> 0", getattr(self, key))


@dataclass(frozen=True)
class DPOStageConfig(DirectPreferenceStageConfig):
    """Direct preference optimisation (``name: dpo``): the policy learns from preference pairs
    against a frozen reference, without R, C or sampling. One axis of the PKU-SafeRLHF schema per
    run: ``better`` aligns for helpfulness, ``safer`` for harmlessness; SACPO (Wachi et al. 2024)
    is the first followed by the second from its folder (``make sacpo``)."""

    name: str = "dpo"
    max_steps: int = 150
    axis: str = "better"
    """Which label of each pair is "chosen": better (``better_response_id``, helpfulness) or
    safer (``safer_response_id``, harmlessness; the data must carry safety labels)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.axis in {"better", "safer"}, "stage.axis", "better or safer", self.axis)


@dataclass(frozen=True)
class CDPOStageConfig(DirectPreferenceStageConfig):
    """Constrained DPO (``name: cdpo``; Liu et al. 2024, "Enhancing LLM Safety via Constrained
    Direct Preference Optimization"): maximise E[R] subject to E[C] <= cost_limit with DPO in
    place of PPO. Each of ``max_steps`` iterations samples ``num_return_sequences`` responses to
    each of ``batch_size`` prompts from the current policy, scores them with the trained R and
    C, updates λ by the ``lambda_schedule`` group on their costs (the same schedules, window
    and ``cost_threshold`` limit as PPO-Lagrangian, so E[C] <= d means the same), pairs each
    prompt's best and worst response under R - λ·C and takes ``update_epochs`` DPO steps on
    those pairs. Deviation from the paper: it labels pairs sampled once from the SFT policy and
    updates λ between DPO runs; here the pairs are the current policy's (on-policy, as PPO's
    rollouts) and λ moves every iteration, which lets one stage play the whole dual loop.
    """

    name: str = "cdpo"
    max_steps: int = 80
    """Iterations (sample, score, λ, DPO steps): PPO-Lagrangian's default number of rollouts."""
    batch_size: int = 16
    """Prompts per iteration (PPO-Lagrangian's rollout size)."""
    lr_scheduler: str = "constant"
    lr_warmup_ratio: float = 0.0
    checkpoint_every: int = 10
    """A checkpoint every 10 iterations."""
    reward_model: str = f"{ROUND_DIR}/reward/model"
    """The trained reward model R that labels the samples."""
    cost_model: str = f"{ROUND_DIR}/cost/model"
    """The trained cost model C that labels the samples and drives λ."""
    num_return_sequences: int = 4
    """Responses sampled per prompt (k >= 2): the best and the worst under R - λ·C form the
    prompt's pair (with k = 2 it is the paper's one pair per prompt)."""
    max_new_tokens: int = 48
    """Longest sampled response (PPO-Lagrangian's)."""
    temperature: float = 1.0
    """Sampling temperature of the iterations' samples (the eval_* keys set the oracle's)."""
    top_p: float = 1.0
    """Nucleus sampling of the iterations' samples; 1 samples from the whole distribution."""
    repetition_penalty: float = 1.0
    """Hugging Face's repetition penalty while sampling; 1 is off."""
    update_epochs: int = 2
    """DPO steps per iteration, each on all of the iteration's pairs."""
    tie_tolerance: float = 0.0
    """A prompt whose best and worst R - λ·C differ by at most this gives no pair."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip of the policy's updates."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.num_return_sequences >= 2,
            "stage.num_return_sequences",
            ">= 2 (a pair per prompt)",
            self.num_return_sequences,
        )
        for key in ("max_new_tokens", "update_epochs", "temperature", "max_grad_norm"):
            _check(getattr(self, key) > 0, f"stage.{key}", "> 0", getattr(self, key))
        _check(0 < self.top_p <= 1, "stage.top_p", "in (0, 1]", self.top_p)
        _check(self.tie_tolerance >= 0, "stage.tie_tolerance", ">= 0", self.tie_tolerance)
