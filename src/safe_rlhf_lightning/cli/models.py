"""Models built from the ``model`` group: the policy a stage starts from, and LoRA or activation
checkpointing on the models a stage trains."""

from __future__ import annotations

import logging

from ..benchmark import benchmark_corpus
from ..config import ConfigError, ModelConfig, RunConfig
from ..data import PromptTemplate
from ..models import (
    LoraSettings,
    LoraTargetError,
    ScoreModel,
    add_missing_special_tokens,
    build_tiny_causal_lm,
    load_causal_lm,
    load_tokenizer,
    prepare_trainable,
    train_bpe_tokenizer,
)
from ..rollout import Retokenizer, same_tokenizer
from .hub import require_model_folder

log = logging.getLogger(__name__)


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


def load_score_model(folder: str, score_type: str, key: str, **options) -> ScoreModel:
    """The score model in ``folder`` as a ``score_type`` model (reward, cost, critic); a folder
    holding another kind (a reward model given as the cost model) is a ConfigError naming
    ``key``."""
    try:
        return ScoreModel.from_pretrained(folder, score_type=score_type, **options)
    except ValueError as error:
        raise ConfigError(f"config key '{key}': {error}") from None


def frozen_score_model(path: str, name: str, key: str, actor_tokenizer, typed: RunConfig):
    """A frozen R or C (``key`` names its folder), and a re-tokenizer when its tokenizer is
    not the actor's."""
    require_model_folder(path, key, f"run the {name} stage first", kind="score")
    trust = typed.model.trust_remote_code
    model = load_score_model(path, name, key, trust_remote_code=trust, dtype=typed.model.dtype)
    tokenizer = load_tokenizer(path, trust_remote_code=trust)
    if same_tokenizer(tokenizer, actor_tokenizer):
        return model, None
    log.info("the %s model uses another tokenizer than the actor: re-tokenizing its inputs", name)
    return model, Retokenizer(actor_tokenizer, tokenizer, typed.data.max_length)


def require_same_tokens(path: str, key: str, actor_tokenizer, typed: RunConfig) -> None:
    """The reference and the critics read the actor's token ids (per-token log-probabilities
    and values): their folder's tokenizer must be the actor's."""
    tokenizer = load_tokenizer(path, trust_remote_code=typed.model.trust_remote_code)
    if not same_tokenizer(tokenizer, actor_tokenizer):
        raise ConfigError(
            f"config key '{key}': {path} has another tokenizer than the actor "
            f"({len(tokenizer)} vs {len(actor_tokenizer)} tokens); it must read the actor's "
            "token ids (per-token log-probabilities and values)"
        )
