"""Language models and tokenizers (the tiny default, any Hugging Face model, sampling) and score
models (reward, cost, critics) in upstream safe-rlhf's checkpoint format."""

from .causal_lm import (
    SFT_DIALOGUE_TURNS,
    add_missing_special_tokens,
    build_tiny_causal_lm,
    load_causal_lm,
    sft_dialogue_turns,
)
from .generation import decode, generate_texts, sample_from_logits
from .io import save_pretrained_atomic
from .lora import LoraSettings, LoraTargetError, add_lora, has_lora, merge_lora
from .normalizer import (
    ExponentialMovingAverage,
    IdentityNormalizer,
    Normalizer,
    RunningMeanStd,
    build_normalizer,
)
from .score_model import ScoreModel, ScoreOutput, is_score_model_folder
from .tokenizer import load_tokenizer, train_bpe_tokenizer
from .trainable import enable_activation_checkpointing, prepare_trainable

__all__ = [
    "SFT_DIALOGUE_TURNS",
    "ExponentialMovingAverage",
    "IdentityNormalizer",
    "LoraSettings",
    "LoraTargetError",
    "Normalizer",
    "RunningMeanStd",
    "ScoreModel",
    "ScoreOutput",
    "add_lora",
    "add_missing_special_tokens",
    "build_normalizer",
    "build_tiny_causal_lm",
    "decode",
    "enable_activation_checkpointing",
    "generate_texts",
    "has_lora",
    "is_score_model_folder",
    "load_causal_lm",
    "load_tokenizer",
    "merge_lora",
    "prepare_trainable",
    "sample_from_logits",
    "save_pretrained_atomic",
    "sft_dialogue_turns",
    "train_bpe_tokenizer",
]
