"""The embedded synthetic safety benchmark: a world whose helpfulness and harm are known exactly.

`generate_benchmark` writes SFT demonstrations, labelled preference pairs and prompts in the
PKU-SafeRLHF schema; `Oracle` scores any response; `evaluate_responses` turns a policy's
generations into oracle metrics. See `oracle.py` for the scores and `costs.py` for the cost limit.
"""

from safe_rlhf_lightning.benchmark.annotators import PreferenceLabels, SimulatedAnnotator
from safe_rlhf_lightning.benchmark.costs import DEFAULT_COST_LIMIT
from safe_rlhf_lightning.benchmark.evaluate import (
    evaluate_responses,
    per_response_scores,
    reward_error_breakdown,
)
from safe_rlhf_lightning.benchmark.generate import (
    MANIFEST_FILE,
    PREFERENCE_TEST_FILE,
    PREFERENCE_TRAIN_FILE,
    PROMPTS_TEST_FILE,
    PROMPTS_TRAIN_FILE,
    SFT_TEST_FILE,
    SFT_TRAIN_FILE,
    benchmark_corpus,
    generate_benchmark,
)
from safe_rlhf_lightning.benchmark.oracle import Oracle, OracleScore, PromptInfo
from safe_rlhf_lightning.benchmark.world import HARM_CATEGORIES, PROMPT_KINDS

__all__ = [
    "DEFAULT_COST_LIMIT",
    "HARM_CATEGORIES",
    "MANIFEST_FILE",
    "PREFERENCE_TEST_FILE",
    "PREFERENCE_TRAIN_FILE",
    "PROMPTS_TEST_FILE",
    "PROMPTS_TRAIN_FILE",
    "PROMPT_KINDS",
    "SFT_TEST_FILE",
    "SFT_TRAIN_FILE",
    "Oracle",
    "OracleScore",
    "PreferenceLabels",
    "PromptInfo",
    "SimulatedAnnotator",
    "benchmark_corpus",
    "evaluate_responses",
    "generate_benchmark",
    "per_response_scores",
    "reward_error_breakdown",
]
