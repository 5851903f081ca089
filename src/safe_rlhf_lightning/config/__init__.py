"""Typed configuration schemas.

Hydra merges the YAML files under ``conf/`` into these dataclasses (registered in
``cli/schema.py``), so an unknown key or a value of the wrong type fails while the config is
composed, naming the key. Value checks (a negative learning rate, an empty dataset list) live in
``__post_init__`` and run when the entry point converts the composed config into these objects,
before any model is built. Every option is documented once, here.

The dataclasses are plain Python: any component can be built without Hydra.
"""

from .advantage import AdvantageEstimator, GAEAdvantage, GRPOAdvantage, RLOOAdvantage
from .checks import ConfigError
from .constraints import DEFAULT_NAME, MODEL_SCORER, ConstraintConfig
from .direct_preference import CDPOStageConfig, DirectPreferenceStageConfig, DPOStageConfig
from .resolvers import register_resolvers
from .run import (
    DEFAULT_PROMPT_TEMPLATE,
    BenchmarkCommandConfig,
    CostThresholdConfig,
    CSVLoggerConfig,
    DataConfig,
    LoggersConfig,
    LoraConfig,
    ModelConfig,
    PathsConfig,
    RoundConfig,
    RunConfig,
    TensorBoardLoggerConfig,
    TinyModelConfig,
    TrainerConfig,
    WandbLoggerConfig,
)
from .stages import (
    EXPERIMENT_DIR,
    ROUND_DIR,
    SFT_POLICY,
    CollectStageConfig,
    EvalStageConfig,
    PolicyStageConfig,
    PPOLagStageConfig,
    PreferenceStageConfig,
    SFTStageConfig,
    TrainingStageConfig,
)

register_resolvers()

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_PROMPT_TEMPLATE",
    "EXPERIMENT_DIR",
    "MODEL_SCORER",
    "ROUND_DIR",
    "SFT_POLICY",
    "AdvantageEstimator",
    "BenchmarkCommandConfig",
    "CDPOStageConfig",
    "CSVLoggerConfig",
    "CollectStageConfig",
    "ConfigError",
    "ConstraintConfig",
    "CostThresholdConfig",
    "DPOStageConfig",
    "DataConfig",
    "DirectPreferenceStageConfig",
    "EvalStageConfig",
    "GAEAdvantage",
    "GRPOAdvantage",
    "LoggersConfig",
    "LoraConfig",
    "ModelConfig",
    "PPOLagStageConfig",
    "PathsConfig",
    "PolicyStageConfig",
    "PreferenceStageConfig",
    "RLOOAdvantage",
    "RoundConfig",
    "RunConfig",
    "SFTStageConfig",
    "TensorBoardLoggerConfig",
    "TinyModelConfig",
    "TrainerConfig",
    "TrainingStageConfig",
    "WandbLoggerConfig",
]
