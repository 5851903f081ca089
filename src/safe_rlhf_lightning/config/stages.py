"""Schemas of the ``stage`` group: one dataclass per stage (``stage.<key>``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from .checks import _check


@dataclass(frozen=True)
class TrainingStageConfig:
    """Options every trained stage shares: steps, AdamW and its schedule, batch sizes."""

    name: str = MISSING
    """The stage (the ``stage`` group's option): sft, reward, cost, ppo_lag, dpo, cdpo, eval or
    collect."""
    max_steps: int = 450
    """Optimizer steps (the trainer group reads it as ``trainer.max_steps``). SFT's default:
    enough for the tiny model to learn the benchmark's sentences."""
    max_epochs: Optional[int] = None
    """Passes over the training data (null: ``max_steps`` alone ends training)."""
    lr: float = 3e-3
    """Peak learning rate (the tiny model wants ~3e-3 for SFT; upstream uses 2e-5 at 7B)."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay (never on biases and normalisation weights)."""
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW's (beta1, beta2): upstream safe-rlhf's (0.9, 0.95)."""
    lr_scheduler: str = "cosine"
    """cosine, linear or constant, each after a linear warmup."""
    lr_warmup_ratio: float = 0.03
    """Share of the training steps spent warming the learning rate up from 0."""
    batch_size: int = 32
    """Training examples per optimizer step (PPO: prompts per rollout)."""
    eval_batch_size: int = 128
    """Examples per batch when evaluating (sampling held-out prompts, scoring held-out pairs)."""
    eval_limit: Optional[int] = None
    """Cap on the held-out examples of the final evaluation (prompts sampled for the oracle
    evaluation of a policy, pairs scored for reward and cost); null = all, 0 = skip it."""
    checkpoint_every: int = 50
    """Write ``<run_dir>/checkpoints/last.ckpt`` every this many steps (PPO steps for ppo_lag,
    optimizer steps otherwise) and at the end, for an exact resume after a kill; 0 = only at the
    end of each epoch and of training."""

    fused_optimizer: bool = True
    """torch's fused AdamW (one kernel over all parameters) instead of its loop over them: the
    same update rule, so only floating-point rounding changes (the last bits of the weights);
    on 2 CPU cores ~3x faster optimizer steps at ~25M parameters (benchmarks/RESULTS.md). false
    gives the loop, e.g. to reproduce runs recorded with it."""

    skip_nonfinite: bool = False
    """A NaN or inf in a loss or score: false = stop with an error naming it (the last
    checkpoint and saved models stay intact); true = skip that batch (PPO: that rollout or
    minibatch), counted as ``train/skipped_batches``."""

    def __post_init__(self) -> None:
        _check(self.lr > 0, "stage.lr", "> 0", self.lr)
        _check(self.checkpoint_every >= 0, "stage.checkpoint_every", ">= 0", self.checkpoint_every)
        _check(
            self.eval_limit is None or self.eval_limit >= 0,
            "stage.eval_limit",
            ">= 0 or null",
            self.eval_limit,
        )
        _check(self.weight_decay >= 0, "stage.weight_decay", ">= 0", self.weight_decay)
        _check(
            len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "stage.adam_betas",
            "two numbers in [0, 1)",
            self.adam_betas,
        )
        _check(
            self.lr_scheduler in {"cosine", "linear", "constant"},
            "stage.lr_scheduler",
            "one of cosine, linear, constant",
            self.lr_scheduler,
        )
        _check(
            0 <= self.lr_warmup_ratio < 1,
            "stage.lr_warmup_ratio",
            "in [0, 1)",
            self.lr_warmup_ratio,
        )
        _check(self.batch_size > 0, "stage.batch_size", "> 0", self.batch_size)
        _check(self.eval_batch_size > 0, "stage.eval_batch_size", "> 0", self.eval_batch_size)


@dataclass(frozen=True)
class PolicyStageConfig(TrainingStageConfig):
    """Options of the stages that train a policy (SFT, PPO): the oracle evaluation of its samples
    on held-out benchmark prompts (``eval_limit`` of them) before and after training."""

    eval_max_new_tokens: int = 64
    """Longest response sampled for the oracle evaluation."""
    eval_temperature: float = 1.0
    """Sampling temperature of the oracle evaluation."""
    eval_top_p: float = 1.0
    """Nucleus sampling of the oracle evaluation (1: the whole distribution)."""
    evaluate_before_training: bool = True
    """Also score the initial policy, as the baseline of the oracle metrics."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.eval_temperature > 0, "stage.eval_temperature", "> 0", self.eval_temperature)
        _check(0 < self.eval_top_p <= 1, "stage.eval_top_p", "in (0, 1]", self.eval_top_p)


@dataclass(frozen=True)
class SFTStageConfig(PolicyStageConfig):
    """Supervised fine-tuning on demonstrations (the paper's Alpaca-style SFT)."""

    name: str = "sft"


EXPERIMENT_DIR = "${paths.runs_dir}/${experiment_name}"
ROUND_DIR = f"{EXPERIMENT_DIR}/round${{round}}"
SFT_POLICY = f"{EXPERIMENT_DIR}/round1/sft/model"
"""The SFT policy, trained once in round 1; every round's R and C start from it."""


@dataclass(frozen=True)
class PreferenceStageConfig(TrainingStageConfig):
    """Reward model (``name: reward``) or cost model (``name: cost``) on preference pairs.

    Upstream's defaults for 7B: 2 epochs, lr 2e-5, weight decay 0.1, regularization 0.001,
    sequence-wise loss. The tiny default trains from the SFT policy's folder.
    """

    max_steps: int = 300
    """0.84 epoch of the embedded benchmark's 11,400 pairs (360 steps gave the same accuracies
    within 0.7 points, experiments/results/demo_round1.md)."""
    lr: float = 3e-4
    """Lower than SFT's: a higher rate fits the annotators' label noise (held-out reward accuracy
    after 700 steps: 0.66 at 3e-3, 0.69 at 1e-3, 0.70 at 3e-4)."""

    init_from: str = SFT_POLICY
    """Folder of the model to start from: the SFT policy of round 1 (the paper's choice), any
    causal LM, or a score model (ours or upstream's layout)."""
    collected_train: list[str] = f"${{collected_preferences:{EXPERIMENT_DIR},${{round}}}}"  # type: ignore[assignment]
    """Preference files added to ``data.preference_train``: by default the pairs that the
    ``collect`` stage sampled from the policies of rounds 2..k (none in round 1), so that round
    k's R and C learn from all earlier rounds' data. Every file must exist; [] = base data only."""
    loss_type: str = "sequence-wise"
    """sequence-wise (end scores) or token-wise (every token from the first differing one)."""
    regularization: float = 0.001
    """Weight of the squared-score penalty that keeps scores near 0 (upstream's default)."""
    score_bias: bool = True
    """A bias in the new score head (upstream's default)."""
    do_normalize: bool = False
    """Normalise scores with running statistics (affine for reward, scale-only for cost)."""
    normalizer_type: Optional[str] = "RunningMeanStd"
    """RunningMeanStd, ExponentialMovingAverage or null; statistics are kept either way."""
    momentum: Optional[float] = None
    """Momentum of the ExponentialMovingAverage normalizer."""
    num_histogram_bins: int = 40
    """Bins of the held-out score histogram (better vs worse, or safe vs unsafe)."""
    categories: Optional[list[str]] = None
    """Cost stage: one cost head per harm category listed (a multi-head cost model, the scorer
    of per-category constraints), each trained with the pairwise and sign terms on its
    category's labels (``response_*_harm_category`` of the pairs: the embedded benchmark's and
    PKU-SafeRLHF's); null: one head on the overall safety labels."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.name in {"reward", "cost"}, "stage.name", "reward or cost", self.name)
        _check(
            self.categories is None
            or (
                self.name == "cost"
                and self.loss_type == "sequence-wise"
                and len(self.categories) == len(set(self.categories)) > 0
            ),
            "stage.categories",
            "null, or distinct category names for the cost stage's sequence-wise loss",
            self.categories,
        )
        _check(
            self.loss_type in {"sequence-wise", "token-wise"},
            "stage.loss_type",
            "sequence-wise or token-wise",
            self.loss_type,
        )
        _check(self.regularization >= 0, "stage.regularization", ">= 0", self.regularization)
        _check(
            self.normalizer_type in {None, "RunningMeanStd", "ExponentialMovingAverage"},
            "stage.normalizer_type",
            "RunningMeanStd, ExponentialMovingAverage or null",
            self.normalizer_type,
        )


@dataclass(frozen=True)
class PPOLagStageConfig(PolicyStageConfig):
    """PPO-Lagrangian (``name: ppo_lag``) and its baselines, chosen by the top-level
    ``lambda_schedule`` group, with the limit of the ``cost_threshold`` group. ``max_steps``
    counts PPO steps (one rollout of ``batch_size`` prompts × ``num_return_sequences`` responses
    each); ``lr`` is the actor's learning rate.

    Upstream's defaults for 7B (scripts/ppo-lag.sh since April 2024): actor lr 1e-5, critic lr
    5e-6, kl_coef 0.01 (the full β on each stream, the rule implemented here), clip ranges
    0.2 / 5 / 50, gamma 1, gae_lambda 0.95, ptx_coef 16, one update per rollout. The defaults
    here are tuned for the tiny model on the embedded benchmark so that the demo's PPO (80 steps
    of 16 prompts × 4 responses) takes minutes on 2 CPU cores; upstream's learning rates move the
    ~0.7M model too slowly (experiments/results/demo_round1.md).
    """

    name: str = "ppo_lag"
    max_steps: int = 80
    batch_size: int = 16
    lr: float = 1e-4
    lr_scheduler: str = "constant"
    lr_warmup_ratio: float = 0.0
    eval_limit: Optional[int] = 300
    evaluate_before_training: bool = False
    """The starting policy's oracle figures are the SFT stage's (same prompts, seed and
    settings), so PPO does not sample them again by default."""
    checkpoint_every: int = 10
    """A checkpoint (~25 MB at the tiny size) every 10 PPO steps."""
    actor_init: str = f"{EXPERIMENT_DIR}/${{start_policy:${{round}}}}"
    """The policy to start from: in round 1 the SFT policy (the paper), in round k the
    PPO-Lagrangian policy of round k-1 (``round<k-1>/ppo_lag/model``)."""
    reference_init: str = "${stage.actor_init}"
    """The frozen reference policy of the KL penalty: the policy the round starts from."""
    reward_model: str = f"{ROUND_DIR}/reward/model"
    cost_model: Optional[str] = f"{ROUND_DIR}/cost/model"
    """Needed by every schedule but ``none`` (where, when given, it is only logged)."""
    reward_critic_init: str = "${stage.reward_model}"
    """V_R starts from R (upstream's default), or from any score model or causal LM."""
    cost_critic_init: str = "${stage.cost_model}"
    shared_critic: bool = False
    """One critic backbone with two value heads (V_R and V_C, started from
    ``reward_critic_init`` with a zero cost head) instead of two critics: one backbone pass
    less in every rollout and update. Two-stream schedules only."""
    logprobs_from_generation: bool = True
    """Take the actor's old log-probabilities from the sampling pass (its raw logits, before
    temperature, top-p or repetition penalty) instead of a forward pass of their own: one actor
    pass less per rollout. The same quantity, so only floating-point rounding changes (the KV
    cache sums in another order than a whole-sequence pass). false gives the extra pass
    (upstream safe-rlhf's way), e.g. to reproduce runs recorded with it."""
    num_return_sequences: int = 4
    """Responses sampled per prompt in each rollout (``batch_size`` prompts per rollout)."""
    max_new_tokens: int = 48
    """Longest sampled response; a response cut here has no EOS."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (the eval_* keys set the oracle evaluation's)."""
    top_p: float = 1.0
    """Nucleus sampling of the rollouts; 1 samples from the whole distribution."""
    repetition_penalty: float = 1.0
    """Hugging Face's repetition penalty during rollouts; 1 is off."""
    update_epochs: int = 1
    """PPO epochs over each rollout."""
    minibatch_size: int = 32
    """Rollouts per gradient update."""
    critic_lr: float = 1e-3
    """Peak learning rate of both critics (``lr`` is the actor's)."""
    kl_coef: float = 0.05
    """β of the per-token KL penalty: reward stream -β·KL, cost stream +β·KL (the effective
    KL weight is β for every λ)."""
    clip_range: float = 0.2
    """ε of PPO's clipped surrogate (ratio kept in [1 - ε, 1 + ε])."""
    clip_range_value: float = 5.0
    """How far a critic's value may move from its rollout value in the clipped value loss."""
    clip_range_score: float = 50.0
    """Bound on every per-token reward and cost after KL shaping."""
    gamma: float = 1.0
    """GAE discount."""
    gae_lambda: float = 0.95
    """GAE trace parameter (1 = Monte Carlo returns, 0 = one-step TD)."""
    whiten_advantages: bool = False
    """Normalise each stream's advantages per rollout before mixing (not upstream's)."""
    ptx_coef: float = 0.0
    """Weight of the SFT loss on ``data.sft_train`` mixed into each update; 0 = off."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip, applied to the actor and to each critic separately."""
    log_samples_every: int = 20
    """Steps between rows of sampled responses written to ``samples_train.jsonl``."""
    save_critics: bool = False
    """Also save V_R and V_C (Hugging Face score-model folders) next to the actor; a shared
    critic is saved as ``critic/`` (score_dim 2: head 0 V_R, head 1 V_C)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("num_return_sequences", "max_new_tokens", "update_epochs", "minibatch_size"):
            _check(getattr(self, key) > 0, f"stage.{key}", "> 0", getattr(self, key))
        for key in ("kl_coef", "ptx_coef"):
            _check(getattr(self, key) >= 0, f"stage.{key}", ">= 0", getattr(self, key))
        for key in (
            "clip_range",
            "clip_range_value",
            "clip_range_score",
            "critic_lr",
            "max_grad_norm",
            "temperature",
            "log_samples_every",
        ):
            _check(getattr(self, key) > 0, f"stage.{key}", "> 0", getattr(self, key))
        _check(0 < self.top_p <= 1, "stage.top_p", "in (0, 1]", self.top_p)
        _check(0 <= self.gamma <= 1, "stage.gamma", "in [0, 1]", self.gamma)
        _check(0 <= self.gae_lambda <= 1, "stage.gae_lambda", "in [0, 1]", self.gae_lambda)


@dataclass(frozen=True)
class EvalStageConfig:
    """Evaluation (``name: eval``) of several policies on the same held-out prompts: oracle
    metrics on the embedded benchmark, reward and cost distributions under R and C, arenas judged
    by R and C, Elo ratings, plots and a report in ``<round>/eval/``. Nothing is trained."""

    name: str = "eval"
    max_steps: int = -1
    max_epochs: Optional[int] = 1
    """Not used (nothing is trained); they let the ``trainer`` group resolve as in every stage."""
    policies: Any = None
    """Display name -> policy folder, e.g. ``{sft: <dir>, mine: <dir>}``. The first is the
    reference: every other policy meets it in an arena and the helpfulness–harm plot draws arrows
    from it. null = ``sft`` (round 1's SFT policy) and the round's ``safe_rlhf``
    (``ppo_lag/model``) and ``reward_only`` (``ppo_lag_none/model``)."""
    reward_model: Optional[str] = f"{ROUND_DIR}/reward/model"
    """R for model-based metrics and arena verdicts; null skips them."""
    cost_model: Optional[str] = f"{ROUND_DIR}/cost/model"
    """C (cost > 0 means unsafe); null skips the cost side."""
    arenas: Optional[list[list[str]]] = None
    """Pairs ``[A, B]`` of policy names to compare head to head; null = the reference against
    every other policy."""
    missing_policy: str = "error"
    """What to do with a policy folder that does not exist: error or skip (logged)."""
    eval_limit: Optional[int] = None
    """Held-out prompts to sample (null = all of ``data.prompt_eval``)."""
    eval_max_new_tokens: int = 64
    eval_temperature: float = 1.0
    eval_top_p: float = 1.0
    eval_batch_size: int = 128
    rater_pairs: int = 50
    """Arena pairs per arena exported (blind) for human raters; 0 = none."""
    rater_judgements: Optional[str] = None
    """A filled-in rater CSV (its key file beside it) to read into the Elo table."""
    rater_seed: int = 0
    """Seed of the order in which rater pairs are shown (left / right)."""

    def policy_folders(self, round_dir: str) -> dict[str, str]:
        """``policies``, or the round's three default policies under ``round_dir``."""
        if self.policies is not None:
            return dict(self.policies)
        return {
            "sft": str(Path(round_dir).parent / "round1" / "sft" / "model"),
            "safe_rlhf": f"{round_dir}/ppo_lag/model",
            "reward_only": f"{round_dir}/ppo_lag_none/model",
        }

    def __post_init__(self) -> None:
        _check(
            self.policies is None
            or (
                isinstance(self.policies, dict)
                and bool(self.policies)
                and all(isinstance(f, str) for f in self.policies.values())
            ),
            "stage.policies",
            "null or a mapping {name: policy folder, ...} with at least one entry",
            self.policies,
        )
        _check(
            self.missing_policy in {"error", "skip"},
            "stage.missing_policy",
            "error or skip",
            self.missing_policy,
        )
        _check(
            self.eval_limit is None or self.eval_limit > 0,
            "stage.eval_limit",
            "> 0 or null",
            self.eval_limit,
        )
        _check(self.eval_temperature > 0, "stage.eval_temperature", "> 0", self.eval_temperature)
        _check(0 < self.eval_top_p <= 1, "stage.eval_top_p", "in (0, 1]", self.eval_top_p)
        _check(self.eval_batch_size > 0, "stage.eval_batch_size", "> 0", self.eval_batch_size)
        _check(self.rater_pairs >= 0, "stage.rater_pairs", ">= 0", self.rater_pairs)
        for pair in self.arenas or []:
            _check(
                len(pair) == 2 and all(name in self.policy_folders(ROUND_DIR) for name in pair),
                "stage.arenas",
                f"pairs of names from stage.policies {sorted(self.policy_folders(ROUND_DIR))}",
                pair,
            )


@dataclass(frozen=True)
class CollectStageConfig:
    """Collection of round k's new preference data (``name: collect``, run with ``round=<k>``):
    pairs of responses sampled from the policy the round starts from, on prompts drawn from
    ``data.prompt_train`` with the ones it still answers unsafely weighted up (the paper's red
    teaming of unsolved prompts), labelled, written to ``round<k>/collect/preference_train.jsonl``
    in the PKU-SafeRLHF schema. Round k's R and C add it to their data. Nothing is trained."""

    name: str = "collect"
    max_steps: int = -1
    max_epochs: Optional[int] = 1
    """Not used (nothing is trained); they let the ``trainer`` group resolve as in every stage."""
    policy: str = f"{EXPERIMENT_DIR}/${{start_policy:${{round}}}}"
    """The policy to sample: round k-1's PPO-Lagrangian policy (round 1: the SFT policy)."""
    num_prompts: int = 1024
    """Prompts drawn (with replacement) from ``data.prompt_train``; one pair each."""
    eval_limit: Optional[int] = None
    """Cap on the candidate prompts (the first of ``data.prompt_train`` after a seeded shuffle)
    that the probe answers and the draw picks from; null = all (``debug=fast`` sets 8)."""
    unsafe_weight: float = 4.0
    """A prompt whose probe answer was judged unsafe is this many times as likely to be drawn;
    1 = uniform draw (and no probe pass)."""
    labeler: str = "simulated"
    """simulated: the embedded benchmark's annotators, with its noise settings (manifest.json),
    seeded by seed and round; file: write ``to_label.jsonl`` (labels null) for people to label
    and stop; run again once ``labelled_file`` holds the labelled rows."""
    labelled_file: Optional[str] = None
    """The labelled rows (labeler=file); null = ``<run_dir>/labelled.jsonl``."""
    probe_cost_model: Optional[str] = None
    """labeler=file: a cost model judging the probe answers (C > 0 = unsafe), e.g. the previous
    round's; null = no probe (uniform draw). The simulated labeler judges them itself."""
    max_new_tokens: int = 48
    """As the PPO stage's rollouts (stage.max_new_tokens there)."""
    temperature: float = 1.0
    top_p: float = 1.0
    eval_batch_size: int = 128
    """Prompts per sampling batch (the key every stage has for its sampling)."""

    def __post_init__(self) -> None:
        _check(self.num_prompts > 0, "stage.num_prompts", "> 0", self.num_prompts)
        _check(
            self.eval_limit is None or self.eval_limit > 0,
            "stage.eval_limit",
            "> 0 or null",
            self.eval_limit,
        )
        _check(self.unsafe_weight > 0, "stage.unsafe_weight", "> 0", self.unsafe_weight)
        _check(
            self.labeler in {"simulated", "file"},
            "stage.labeler",
            "simulated or file",
            self.labeler,
        )
        _check(self.max_new_tokens > 0, "stage.max_new_tokens", "> 0", self.max_new_tokens)
        _check(self.temperature > 0, "stage.temperature", "> 0", self.temperature)
        _check(0 < self.top_p <= 1, "stage.top_p", "in (0, 1]", self.top_p)
        _check(self.eval_batch_size > 0, "stage.eval_batch_size", "> 0", self.eval_batch_size)
