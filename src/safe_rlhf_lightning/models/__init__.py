"""Language models and tokenizers: the tiny default, any Hugging Face model, and sampling."""

from .causal_lm import add_missing_special_tokens, build_tiny_causal_lm, load_causal_lm
from .generation import generate_texts
from .io import save_pretrained_atomic
from .tokenizer import load_tokenizer, train_bpe_tokenizer

__all__ = [
    "add_missing_special_tokens",
    "build_tiny_causal_lm",
    "generate_texts",
    "load_causal_lm",
    "load_tokenizer",
    "save_pretrained_atomic",
    "train_bpe_tokenizer",
]
