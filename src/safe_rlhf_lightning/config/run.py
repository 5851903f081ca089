"""Schemas of everything but the stage: model, data, trainer, loggers, paths and the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from .checks import _check
from .constraints import typed_constraints

DEFAULT_PROMPT_TEMPLATE = "BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:"
ALL_LINEAR = "all-linear"  # PEFT's name for every linear layer but the output head


@dataclass
class PathsConfig:
    runs_dir: str = "runs"
    """Root of all run folders: ``<runs_dir>/<experiment_name>/round<k>/<stage>/``."""
    data_dir: str = "data"
    """Root for generated data (the embedded benchmark goes to ``<data_dir>/benchmark``)."""


@dataclass
class TinyModelConfig:
    """The embedded default: a Llama-architecture model built from a config, random init."""

    vocab_size: int = 2048
    """Target size of the byte-level BPE trained on the benchmark's text (may come out smaller)."""
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 512
    seed: int = 0
    """Seed of the initial weights (independent of the global seed)."""

    def __post_init__(self) -> None:
        for key in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            value = getattr(self, key)
            _check(value > 0, f"model.tiny.{key}", "> 0", value)
        _check(
            self.hidden_size % self.num_heads == 0,
            "model.tiny.hidden_size",
            f"a multiple of model.tiny.num_heads={self.num_heads}",
            self.hidden_size,
        )


@dataclass
class LoraConfig:
    """LoRA adapters (PEFT) on the models a stage trains: the SFT policy, the reward and cost
    models' transformers, and PPO's actor and critics. Frozen models never get them. Score heads
    stay fully trained. Adapters are merged into the weights before a model folder is saved, so
    every stage still writes a plain Hugging Face folder."""

    enabled: bool = False
    """Train low-rank adapters instead of every weight of the transformer."""
    r: int = 8
    """Rank of each adapter."""
    alpha: int = 16
    """Scale of the adapters' output: alpha / r (PEFT's ``lora_alpha``)."""
    dropout: float = 0.0
    """Dropout on each adapter's input (PEFT's ``lora_dropout``)."""
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR])
    """Names (or name suffixes) of the layers to adapt, e.g. ``[q_proj, v_proj]``; ``[all-linear]``
    adapts every linear layer but the LM head, whatever the architecture calls them."""

    def __post_init__(self) -> None:
        for key in ("r", "alpha"):
            value = getattr(self, key)
            _check(value > 0, f"model.lora.{key}", "> 0", value)
        _check(0.0 <= self.dropout < 1.0, "model.lora.dropout", "in [0, 1)", self.dropout)
        targets = list(self.target_modules)
        _check(
            bool(targets) and all(isinstance(t, str) and t.strip() for t in targets),
            "model.lora.target_modules",
            "a non-empty list of layer names",
            targets,
        )
        _check(
            ALL_LINEAR not in targets or len(targets) == 1,
            "model.lora.target_modules",
            f"either [{ALL_LINEAR}] alone or a list of layer names",
            targets,
        )


@dataclass
class ModelConfig:
    name_or_path: Optional[str] = MISSING
    """Hugging Face hub name or local folder of a causal LM; null builds the tiny model."""
    tokenizer: Optional[str] = None
    """Tokenizer name or folder when it differs from ``name_or_path``."""
    trust_remote_code: bool = False
    """Run code shipped with a hub model. Off unless you trust the model's authors."""
    dtype: str = "float32"
    """Weights dtype when loading: float32, bfloat16 or float16."""
    gradient_checkpointing: bool = False
    """Recompute each transformer layer's activations in the backward pass instead of keeping
    them (less memory; each layer's forward runs twice), on the models a stage trains. Sampling
    and scoring without gradients are unaffected."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)

    def __post_init__(self) -> None:
        _check(
            self.dtype in {"float32", "bfloat16", "float16"},
            "model.dtype",
            "one of float32, bfloat16, float16",
            self.dtype,
        )


@dataclass
class DataConfig:
    """Datasets per stage, each a list of upstream-style specs ``name[:proportion[:path]]``.

    Names are registered datasets (``benchmark-sft/train``, ``PKU-SafeRLHF/train``, ``alpaca``,
    ...) or paths to JSONL / Parquet files and dataset folders.
    """

    root: str = "${paths.data_dir}/benchmark"
    """Folder that the embedded benchmark's registered names resolve against."""
    generate_benchmark: bool = True
    """Write the embedded benchmark into ``root`` when it is missing there."""
    benchmark_seed: int = 0
    """Seed of the generated benchmark (prompts, demonstrations, annotator noise)."""
    sft_train: list[str] = field(default_factory=list)
    sft_eval: list[str] = field(default_factory=list)
    preference_train: list[str] = field(default_factory=list)
    preference_eval: list[str] = field(default_factory=list)
    prompt_train: list[str] = field(default_factory=list)
    prompt_eval: list[str] = field(default_factory=list)
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    """Chat template around the prompt; contains ``{prompt}`` once (upstream's format)."""
    response_prefix: str = " "
    """Text between the formatted prompt and the response."""
    max_length: int = 256
    """Maximum tokens of prompt + response; longer responses are truncated."""
    skip_bad_records: bool = False
    """Skip (and count) malformed records instead of stopping with an error."""
    num_workers: int = 0

    def __post_init__(self) -> None:
        _check(self.max_length > 1, "data.max_length", "> 1", self.max_length)
        _check(
            self.prompt_template.count("{prompt}") == 1,
            "data.prompt_template",
            "a string containing '{prompt}' exactly once",
            self.prompt_template,
        )
        _check(self.num_workers >= 0, "data.num_workers", ">= 0", self.num_workers)


@dataclass
class CostThresholdConfig:
    cost_limit: float = 0.0
    """The constraint E[C] <= cost_limit, in the cost model's units (C > 0 means unsafe; the
    paper's threshold d is -cost_limit)."""


@dataclass
class RoundConfig:
    """One row of the ``rounds`` table: the settings that change from one round to the next.

    The paper's three rounds (Dai et al. 2024, Appendix C.2): cost limit 0 / -3 / -3 (its
    threshold d is -cost_limit), λ init 1 / 0.5 / 1, λ lr 0.01 / 0.04 / 0.04. The defaults here
    are upstream's single-round ones.
    """

    cost_limit: float = 0.0
    """The round's E[C] <= cost_limit (read by ``cost_threshold=per_round``)."""
    lambda_init: float = 1.0
    """Initial λ of the learned and PID schedules."""
    lambda_lr: float = 0.1
    """Learning rate of log λ (learned schedule)."""

    def __post_init__(self) -> None:
        _check(self.lambda_init > 0, "rounds.<k>.lambda_init", "> 0", self.lambda_init)
        _check(self.lambda_lr > 0, "rounds.<k>.lambda_lr", "> 0", self.lambda_lr)


@dataclass
class TrainerConfig:
    """Arguments of ``pytorch_lightning.Trainer`` (instantiated by Hydra)."""

    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_epochs: Optional[int] = 1
    max_steps: int = -1
    val_check_interval: Optional[float] = None
    check_val_every_n_epoch: Optional[int] = 1
    log_every_n_steps: int = 10
    gradient_clip_val: Optional[float] = 1.0
    accumulate_grad_batches: int = 1
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    enable_model_summary: bool = "${verbose}"  # type: ignore[assignment]
    """Lightning's table of each model's layers at the start of fit: with ``verbose`` only."""
    deterministic: Any = False

    def __post_init__(self) -> None:
        _check(
            self.max_epochs is not None or self.max_steps > 0,
            "trainer.max_steps",
            "> 0 when trainer.max_epochs is null",
            self.max_steps,
        )


@dataclass
class CSVLoggerConfig:
    _target_: str = "pytorch_lightning.loggers.CSVLogger"
    save_dir: str = "${run_dir}"
    name: str = "logs"
    version: Optional[str] = None
    """null: a new ``version_<n>`` folder per launch, so a resumed run never overwrites logs."""


@dataclass
class WandbLoggerConfig:
    """Weights & Biases: one run per stage, grouped by experiment; files in ``<save_dir>/wandb``."""

    _target_: str = "pytorch_lightning.loggers.WandbLogger"
    project: str = "safe-rlhf-lightning"
    name: Optional[str] = None
    """null: ``<experiment>-round<k>-<stage>``, then the λ schedule (ppo_lag) and each value a
    multirun sweeps, e.g. ``demo-round1-ppo_lag-fixed-nu0.5-seed1`` (``cli/loggers.py``)."""
    group: Optional[str] = "${wandb_group:${experiment_name},${sweep_name}}"
    """The experiment (all its rounds), or ``<experiment>-<sweep_name>`` for a sweep's runs."""
    job_type: Optional[str] = "${stage.name}"
    tags: Optional[list[str]] = None
    """null: experiment, ``round<k>``, stage, ``schedule=<option>`` (ppo_lag), the sweep's name
    when set and one ``<key>=<value>`` per swept key."""
    save_dir: str = "${run_dir}"
    offline: Optional[bool] = None
    """null: online when a W&B API key is configured (``WANDB_API_KEY`` or ``wandb login``'s
    ``~/.netrc`` entry) and ``WANDB_MODE`` is not offline/disabled, offline otherwise; true/false
    force it. Upload an offline run later with ``wandb sync <save_dir>/wandb/offline-run-*``."""
    log_model: bool = False


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "pytorch_lightning.loggers.TensorBoardLogger"
    save_dir: str = "${run_dir}"
    name: str = "tensorboard"
    version: Optional[str] = None
    """null: a new ``version_<n>`` folder per launch, like the CSV logger."""
    default_hp_metric: bool = False
    """Lightning's placeholder ``hp_metric`` curve (always -1) is left out."""


@dataclass
class LoggersConfig:
    """Any combination of loggers; a null entry is off. Each gets the resolved run config as
    hyperparameters."""

    csv: Optional[CSVLoggerConfig] = None
    wandb: Optional[WandbLoggerConfig] = None
    tensorboard: Optional[TensorBoardLoggerConfig] = None


@dataclass
class BenchmarkCommandConfig:
    """``safe-rlhf-benchmark``: where and with which seed to write the embedded benchmark."""

    output_dir: str = "data/benchmark"
    seed: int = 0
    force: bool = False
    """Write again even when ``output_dir`` already holds a benchmark."""


@dataclass
class RunConfig:
    """The whole composed config of one stage run."""

    stage: Any = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggersConfig = field(default_factory=LoggersConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    lambda_schedule: Any = None
    """The ``lambda_schedule`` group (ppo_lag only): ``_target_`` a schedule class of
    ``safe_rlhf_lightning.lagrange`` and its constructor's options (their schema is made from
    the constructor, ``cli/schema.py``)."""
    advantage: Any = None
    """The ``advantage`` group (ppo_lag only): ``_target_`` an estimator of
    ``safe_rlhf_lightning.config.advantage`` (gae, grpo, dr_grpo, rloo) and its options; null is
    ``gae``."""
    cost_threshold: CostThresholdConfig = field(default_factory=CostThresholdConfig)
    constraints: dict[str, Any] = field(default_factory=dict)
    """The ``constraints`` group (ppo_lag only): several constraints at once, ``{name:
    ConstraintConfig}`` (``config/constraints.py``; the entries are typed when the config is
    checked, so that ``+constraints.<name>={...}`` can add one on the command line); empty (no
    option selected) is the single constraint of ``stage.cost_model``, ``cost_threshold`` and
    ``lambda_schedule``."""
    rounds: dict[str, RoundConfig] = field(default_factory=lambda: {"1": RoundConfig()})
    """The ``rounds`` group: per-round settings, ``{k: RoundConfig}``, read through
    ``${round_setting:<key>}`` (``cost_threshold=per_round``, the learned and PID schedules)."""
    experiment_name: str = "default"
    """Runs go to ``<paths.runs_dir>/<experiment_name>/round<round>/<stage.name>``."""
    round: int = 1
    """Round of the experiment: round 1 starts from the SFT policy, round k from round k-1's
    PPO-Lagrangian policy, with the data collected in rounds 2..k added to R's and C's."""
    seed: int = 42
    verbose: bool = False
    """Also print what is mostly noise on a first run: Lightning's model summary tables
    (``trainer.enable_model_summary`` follows it)."""
    sweep_name: Optional[str] = None
    """Name of the sweep this run belongs to (the sweep make targets set it): its runs share a
    W&B group and tag."""
    run_dir: str = "${hydra:runtime.output_dir}"
    """Output folder of this run (Hydra's output dir)."""
    save_checkpoints: bool = True
    """Keep Lightning checkpoints (for resuming) in ``<run_dir>/checkpoints``."""
    resume: bool = True
    """Continue from ``<run_dir>/checkpoints/last.ckpt`` when it exists."""

    def __post_init__(self) -> None:
        _check(self.round >= 1, "round", ">= 1", self.round)
        self.constraints = typed_constraints(self.constraints)
        _check(
            self.lambda_schedule is None
            or hasattr(self.lambda_schedule, "_target_")
            or (isinstance(self.lambda_schedule, dict) and "_target_" in self.lambda_schedule),
            "lambda_schedule",
            "an option of the lambda_schedule group (learned, pid, fixed, none)",
            self.lambda_schedule,
        )
