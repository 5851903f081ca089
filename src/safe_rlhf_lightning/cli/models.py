"""Models built from the ``model`` group: the policy a stage starts from, and LoRA or activation
checkpointing on the models a stage trains."""

from __future__ import annotations

from ..benchmark import benchmark_corpus
from ..config import ConfigError, ModelConfig
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
