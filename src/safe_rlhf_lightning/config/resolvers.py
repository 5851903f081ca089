"""OmegaConf resolvers behind the round-aware defaults of ``conf/``.

Safe RLHF runs in rounds (Dai et al. 2024, Section 4.1: three rounds, each collecting new
preference data from the current policy). Round ``k`` of an experiment lives in
``<paths.runs_dir>/<experiment_name>/round<k>/``; these resolvers let the configs say, without
arithmetic in YAML:

- ``${round_setting:cost_limit}``: a value of the current round's row of the ``rounds`` table;
- ``${start_policy:${round}}``: the policy a round starts from (round 1: the SFT policy; round k:
  round k-1's PPO-Lagrangian policy), as a path under the experiment folder;
- ``${collected_preferences:<experiment dir>,${round}}``: the preference files collected in rounds
  2..k (each added to the base data when round k retrains R and C);
- ``${wandb_group:${experiment_name},${sweep_name}}``: the runs of one round sequence or sweep
  share a Weights & Biases group (their names and tags are made from the launch: cli/loggers.py).

They are pure functions of their arguments (``round_setting`` also reads the root config) and are
registered once, when ``safe_rlhf_lightning.config`` is imported.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from .checks import ConfigError

COLLECTED_FILE = "preference_train.jsonl"
"""The file a ``collect`` stage writes into ``round<k>/collect/``."""


def _round_number(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ConfigError(f"config key 'round' must be >= 1, got {value!r}")
    return number


def round_setting(key: str, *, _root_: DictConfig) -> Any:
    """``rounds[round][key]``: the current round's setting, e.g. its cost limit."""
    number = _round_number(_root_.get("round", 1))
    table = _root_.get("rounds") or {}
    if str(number) not in table:
        raise ConfigError(
            f"config key 'rounds' has no row for round {number} (rows: {sorted(table)}): "
            "select a rounds option with that row (rounds=<file in conf/rounds/>, e.g. a copy "
            "of benchmark.yaml with more rows), or set cost_threshold and the lambda_schedule's "
            "init and lr directly"
        )
    row = table[str(number)]
    if key not in row:
        raise ConfigError(f"config key 'rounds.{number}' has no setting {key!r}")
    return row[key]


def start_policy(round_number: Any) -> str:
    """Where round ``round_number``'s policy starts, relative to the experiment folder."""
    number = _round_number(round_number)
    return "round1/sft/model" if number == 1 else f"round{number - 1}/ppo_lag/model"


def collected_preferences(experiment_dir: str, round_number: Any) -> list[str]:
    """The preference files collected from the policies of rounds 2..``round_number``."""
    number = _round_number(round_number)
    return [f"{experiment_dir}/round{k}/collect/{COLLECTED_FILE}" for k in range(2, number + 1)]


def wandb_group(experiment_name: str, sweep_name: str | None) -> str:
    """One W&B group per round sequence (the experiment) or per sweep within it."""
    return experiment_name if not sweep_name else f"{experiment_name}-{sweep_name}"


RESOLVERS = {
    "round_setting": round_setting,
    "start_policy": start_policy,
    "collected_preferences": collected_preferences,
    "wandb_group": wandb_group,
}


def register_resolvers() -> None:
    """Register every resolver (again: idempotent)."""
    for name, function in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, function, replace=True)
