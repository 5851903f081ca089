"""Builds components from the typed config. The only place (with ``train.py``) that knows Hydra."""

from __future__ import annotations

import json
import logging
import netrc
import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import urlsplit

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from ..benchmark import benchmark_corpus, generate_benchmark
from ..checkpoint_io import AtomicCheckpointIO
from ..config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    PolicyStageConfig,
    RunConfig,
    TrainingStageConfig,
)
from ..data import PromptTemplate, load_records
from ..evaluation import oracle_scores, sample_responses
from ..models import (
    LoraSettings,
    LoraTargetError,
    add_missing_special_tokens,
    build_tiny_causal_lm,
    load_causal_lm,
    load_tokenizer,
    prepare_trainable,
    train_bpe_tokenizer,
)
from ..stages import PPOStepCheckpoint

log = logging.getLogger(__name__)

BENCHMARK_PREFIX = "benchmark-"
MANIFEST = "manifest.json"


def require_datasets(specs: list[str], key: str) -> list[str]:
    if not specs:
        raise ConfigError(
            f"config key '{key}' is empty: this stage needs at least one dataset spec "
            "'name[:proportion[:path]]' (e.g. data=benchmark, or data=local with your files)"
        )
    return specs


# Stage keys that name a model folder; a Hugging Face hub id there is resolved to its local
# snapshot before the stage runs (resolve_hub_models).
MODEL_FOLDER_KEYS = (
    "init_from", "actor_init", "reference_init", "reward_model", "cost_model",
    "reward_critic_init", "cost_critic_init", "policy", "probe_cost_model",
)  # fmt: skip
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_hub_models(stage) -> None:
    """Replace hub ids (``PKU-Alignment/beaver-7b-v1.0-reward``) in the stage's model keys and
    in the eval stage's ``policies`` by the folder of their snapshot in the Hugging Face cache,
    downloaded first unless ``HF_HUB_OFFLINE=1``. Local folders are left as they are; a hub id
    that cannot be had is a ConfigError naming the key."""
    for key in MODEL_FOLDER_KEYS:
        value = getattr(stage, key, None)
        if isinstance(value, str):
            setattr(stage, key, _hub_snapshot(value, f"stage.{key}"))
    policies = getattr(stage, "policies", None)
    if isinstance(policies, dict):
        for name, value in policies.items():
            if isinstance(value, str):
                policies[name] = _hub_snapshot(value, f"stage.policies.{name}")


def _hub_snapshot(value: str, key: str) -> str:
    if Path(value).expanduser().exists() or not HUB_ID.match(value):
        return value
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(value)
    except LocalEntryNotFoundError:
        raise ConfigError(
            f"config key '{key}': {value!r} is not a local folder, and the hub model of that "
            "name is not in the Hugging Face cache (offline: HF_HUB_OFFLINE=1). Download it "
            f"first (`hf download {value}`) or set HF_HUB_OFFLINE=0"
        ) from None
    except HfHubHTTPError as error:
        message = f"config key '{key}': cannot fetch {value!r} from the hub: {error}"
        raise ConfigError(message) from None
    log.info("%s: hub model %s → %s", key, value, folder)
    return folder


def require_model_folder(path: str | None, key: str, hint: str) -> None:
    """A config key naming a model folder must point at one (a ``config.json`` inside)."""
    if path is None or not (Path(path) / "config.json").is_file():
        raise ConfigError(
            f"config key '{key}' must be a model folder, got {path!r} "
            f"(no config.json there): {hint}"
        )


def uses_benchmark(specs: list[str]) -> bool:
    return bool(specs) and all(spec.startswith(BENCHMARK_PREFIX) for spec in specs)


def ensure_benchmark(data: DataConfig) -> Path | None:
    """Generate the embedded benchmark into ``data.root`` when it is missing (and asked for).

    An existing benchmark made with another seed is an error rather than silently overwritten.
    """
    if not data.generate_benchmark:
        return None
    root = Path(data.root)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        seed = json.loads(manifest_path.read_text()).get("seed")
        if seed != data.benchmark_seed:
            raise ConfigError(
                f"{root} holds the benchmark generated with seed {seed}, but "
                f"data.benchmark_seed={data.benchmark_seed}: point data.root elsewhere or delete it"
            )
        return root
    log.info("generating the embedded benchmark (seed %d) into %s", data.benchmark_seed, root)
    generate_benchmark(root, seed=data.benchmark_seed)
    return root


def build_policy(model_cfg: ModelConfig, template: PromptTemplate):
    """The policy and its tokenizer: the tiny default or any Hugging Face causal LM."""
    if model_cfg.name_or_path is None:
        tiny = model_cfg.tiny
        # Every training sequence starts with the template, so it is weighted like the prompts
        # themselves; otherwise BPE spends no merges on its rare upper-case words and spells
        # "BEGINNING OF CONVERSATION" letter by letter, a third of each sequence.
        world = benchmark_corpus()
        corpus = [*world, *[template.format_prompt("")] * len(world)]
        tokenizer = train_bpe_tokenizer(corpus, vocab_size=tiny.vocab_size)
        model = build_tiny_causal_lm(
            tokenizer,
            hidden_size=tiny.hidden_size,
            num_layers=tiny.num_layers,
            num_heads=tiny.num_heads,
            intermediate_size=tiny.intermediate_size,
            max_position_embeddings=tiny.max_position_embeddings,
            seed=tiny.seed,
        )
        return model, tokenizer
    tokenizer = load_tokenizer(
        model_cfg.tokenizer or model_cfg.name_or_path, trust_remote_code=model_cfg.trust_remote_code
    )
    model = load_causal_lm(
        model_cfg.name_or_path, trust_remote_code=model_cfg.trust_remote_code, dtype=model_cfg.dtype
    )
    add_missing_special_tokens(tokenizer, model)
    return model, tokenizer


def prepare_trained_model(model, model_cfg: ModelConfig):
    """``model.lora`` and ``model.gradient_checkpointing`` applied to a model the stage trains
    (a causal LM or a score model); frozen models are never passed here. Returns ``model``."""
    lora = model_cfg.lora
    settings = (
        LoraSettings(lora.r, lora.alpha, lora.dropout, tuple(lora.target_modules))
        if lora.enabled
        else None
    )
    try:
        return prepare_trainable(
            model, gradient_checkpointing=model_cfg.gradient_checkpointing, lora=settings
        )
    except LoraTargetError as error:
        raise ConfigError(f"config key 'model.lora.target_modules': {error}") from None


def datamodule_options(typed: RunConfig, template: PromptTemplate) -> dict:
    """The DataModule arguments every stage takes from ``data`` and the stage's batch sizes."""
    data, stage = typed.data, typed.stage
    return {
        "data_root": data.root,
        "template": template,
        "max_length": data.max_length,
        "batch_size": stage.batch_size,
        "eval_batch_size": stage.eval_batch_size,
        "num_workers": data.num_workers,
        "skip_bad_records": data.skip_bad_records,
        "seed": typed.seed,
    }


def optimizer_options(stage: TrainingStageConfig) -> dict:
    """AdamW, schedule and numerical-guard arguments of a stage module, from its config."""
    return {
        "lr": stage.lr,
        "weight_decay": stage.weight_decay,
        "adam_betas": tuple(stage.adam_betas),
        "lr_scheduler": stage.lr_scheduler,
        "lr_warmup_ratio": stage.lr_warmup_ratio,
        "skip_nonfinite": stage.skip_nonfinite,
        "fused_optimizer": stage.fused_optimizer,
    }


def wandb_api_key_configured() -> bool:
    """A W&B API key in ``WANDB_API_KEY`` or in the netrc entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    path = os.environ.get("NETRC") or Path.home() / ".netrc"
    try:
        credentials = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(credentials and credentials[2])


def choose_wandb_offline(offline: bool | None) -> tuple[bool, str]:
    """``logger.wandb.offline``, with null decided here; also the reason, for the log."""
    if offline is not None:
        return offline, f"logger.wandb.offline={str(offline).lower()}"
    # "dryrun" is what Lightning's WandbLogger(offline=True) writes into WANDB_MODE.
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun", "disabled"):
        return True, f"WANDB_MODE={mode}"
    if not wandb_api_key_configured():
        return True, "no W&B API key configured"
    return False, "a W&B API key is configured"


def build_loggers(cfg: DictConfig) -> list:
    """The ``logger`` group's loggers, each sent the resolved run config as hyperparameters."""
    loggers = []
    for name, logger_cfg in cfg.logger.items():
        if logger_cfg is None:
            continue
        options = {}
        if name == "wandb":
            _finish_previous_wandb_run()
            options["offline"], reason = choose_wandb_offline(logger_cfg.offline)
            log.info("wandb %s (%s)", "offline" if options["offline"] else "online", reason)
        loggers.append(instantiate(logger_cfg, _convert_="all", **options))
        log.info("logging to %s", name)
    hyperparameters = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(hyperparameters)
    return loggers


def _finish_previous_wandb_run() -> None:
    """Each stage its own wandb run: Lightning would reuse one still open in this process (the
    previous job of a Hydra multirun), so it is finished first."""
    import wandb

    if wandb.run is not None:
        wandb.finish()


_EXTRA_CALLBACKS: ContextVar[tuple] = ContextVar("extra_callbacks", default=())


@contextmanager
def extra_callbacks(*callbacks) -> Iterator[None]:
    """Inside, every Trainer a stage runner builds also gets ``callbacks`` (Lightning callback
    objects): how a program that calls ``run_stage`` in-process (a benchmark, a notebook)
    measures or watches a stage without a config entry."""
    token = _EXTRA_CALLBACKS.set((*_EXTRA_CALLBACKS.get(), *callbacks))
    try:
        yield
    finally:
        _EXTRA_CALLBACKS.reset(token)


def build_trainer(
    cfg: DictConfig, run_dir: Path, loggers: list, callbacks: list, **overrides
) -> pl.Trainer:
    """The ``trainer`` group's Trainer; ``overrides`` replace its arguments (stage-specific).
    Checkpoints are written atomically and read with ``weights_only=True`` unless the group
    sets plugins of its own."""
    plugins = {} if cfg.trainer.get("plugins") else {"plugins": [AtomicCheckpointIO()]}
    return instantiate(
        cfg.trainer,
        logger=loggers or False,
        callbacks=[*callbacks, *_EXTRA_CALLBACKS.get()],
        default_root_dir=str(run_dir),
        _convert_="all",
        **plugins,
        **overrides,
    )


def checkpointing(
    typed: RunConfig, run_dir: Path, per_ppo_step: bool = False
) -> tuple[list, str | None]:
    """Callbacks that keep ``<run_dir>/checkpoints/last.ckpt`` (every ``stage.checkpoint_every``
    optimizer steps, or PPO steps with ``per_ppo_step``, and at the end), and that file when
    a run resumes. The PPO stage's callback is no ModelCheckpoint: its Trainer needs
    ``enable_checkpointing=False``, or Lightning adds a default one."""
    last = run_dir / "checkpoints" / "last.ckpt"
    callbacks = []
    every = typed.stage.checkpoint_every
    if typed.save_checkpoints and per_ppo_step:
        callbacks.append(PPOStepCheckpoint(last, every))
    elif typed.save_checkpoints:
        callbacks.append(
            ModelCheckpoint(
                dirpath=last.parent,
                save_last=True,
                save_top_k=0,
                every_n_train_steps=every or None,
            )
        )
    if typed.resume and last.exists():
        log.info("resuming from %s", last)
        return callbacks, str(last)
    return callbacks, None


def oracle_eval_prompts(typed: RunConfig, stage: PolicyStageConfig) -> list[str]:
    """Held-out benchmark prompts for the oracle (none for real data: no oracle there)."""
    data = typed.data
    if stage.eval_limit == 0 or not uses_benchmark(data.prompt_eval):
        return []
    records = load_records(data.prompt_eval, "prompt", data_root=data.root, seed=typed.seed)
    prompts = [record.prompt for record in records]
    random.Random(typed.seed).shuffle(prompts)
    return prompts[: stage.eval_limit]


def sample_policy(model, tokenizer, prompts, template, stage, seed: int) -> list[str]:
    """One response per prompt with the stage's ``eval_*`` settings, sampled in an RNG stream of
    its own (``seed``): the same policy gets the same samples in every run and stage."""
    return sample_responses(
        model,
        tokenizer,
        prompts,
        template,
        max_new_tokens=stage.eval_max_new_tokens,
        temperature=stage.eval_temperature,
        top_p=stage.eval_top_p,
        batch_size=stage.eval_batch_size,
        seed=seed,
    )


def oracle_eval(model, tokenizer, prompts, template, stage, seed: int):
    """``sample_policy``, scored by the oracle: metrics and one row per response."""
    return oracle_scores(prompts, sample_policy(model, tokenizer, prompts, template, stage, seed))


def log_metrics(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Send metrics computed outside ``fit`` (e.g. oracle evaluations) to every logger."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
        logger.save()
