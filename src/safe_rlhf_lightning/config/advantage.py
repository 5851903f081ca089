"""Schemas of the ``advantage`` group: how PPO-Lagrangian estimates each stream's advantage.

One small frozen dataclass per estimator rather than one dataclass with a switch: each
estimator has its own options (GAE none beyond the stage's ``gamma``/``gae_lambda``; GRPO its std
scaling and aggregation) and its own default KL placement, and a field that only one estimator
reads would be a setting that silently does nothing for the others. The ``advantage`` group's
schemas are made from these constructors (``cli/schema.py``, as for ``lambda_schedule``), so an
unknown key or a wrong type fails while the config is composed, and Hydra instantiates the
chosen one. The two streams (reward and cost) and their mix ``(A_R - λ·A_C) / (1 + λ)`` are the
same for every estimator; only how each stream's advantage is estimated changes.

``kl_penalty`` places the KL to the reference policy:

- ``reward``: in the score, as PPO-Lagrangian does today (``-β·KL`` on the reward stream,
  ``+β·KL`` on the cost stream, so the mixed advantage carries a KL weight of exactly β for
  every λ when the estimator is linear in the scores);
- ``loss``: as GRPO's k3 term ``β·KL_k3`` in the actor's loss (Shao et al. 2024, Eq. 3-4), beside
  the clipped surrogate, whatever λ is.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

from .checks import ConfigError, _check

if TYPE_CHECKING:
    from .stages import PPOLagStageConfig

KL_PLACEMENTS = ("reward", "loss")
AGGREGATIONS = ("sequence", "budget")


@dataclass(frozen=True)
class GAEAdvantage:
    """``gae``: Generalized Advantage Estimation with a reward critic and a cost critic, the
    paper's PPO-Lagrangian (the default; ``stage.gamma``, ``stage.gae_lambda`` and the critics'
    settings apply). The KL is in the per-token reward, where the critics learn it."""

    name: ClassVar[str] = "gae"
    critics: ClassVar[bool] = True
    kl_penalty: ClassVar[str] = "reward"


def _check_group_options(kl_penalty: str, aggregation: str) -> None:
    _check(
        kl_penalty in KL_PLACEMENTS, "advantage.kl_penalty", f"one of {KL_PLACEMENTS}", kl_penalty
    )
    _check(
        aggregation in AGGREGATIONS, "advantage.aggregation", f"one of {AGGREGATIONS}", aggregation
    )


@dataclass(frozen=True)
class GRPOAdvantage:
    """``grpo`` and ``dr_grpo``: a group baseline instead of critics (Shao et al. 2024, Sec.
    4.1.2). Each prompt's ``stage.num_return_sequences`` responses form a group; per stream, a
    response's advantage is its end score minus the group's mean, divided by the group's std
    (``functional.grpo_advantages``), given to each of its tokens. No critic is loaded, trained
    or saved.

    KL default ``loss`` (the paper's Eq. 3): dividing by the group's std rescales whatever is in
    the score, so a KL folded into the score would weigh differently in every group and with
    every λ; the k3 term in the loss keeps its weight at β.
    """

    scale_by_std: bool = True
    """Divide by the group's std (GRPO); false is Dr. GRPO (Liu et al. 2025), which drops it
    because it up-weights prompts whose responses barely differ."""
    kl_penalty: str = "loss"
    """``loss`` (the k3 term in the actor's loss) or ``reward`` (in each stream's score)."""
    aggregation: str = "sequence"
    """How the actor's per-token loss is averaged: ``sequence`` (over each response's tokens,
    then over responses: GRPO's rule and PPO-Lagrangian's) or ``budget`` (each response's token
    sum over ``stage.max_new_tokens``, then the mean over responses: Dr. GRPO, no length bias)."""
    eps: float = 1e-6
    """Added to the group's std (with ``scale_by_std``)."""

    critics: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return "grpo" if self.scale_by_std else "dr_grpo"

    def __post_init__(self) -> None:
        _check_group_options(self.kl_penalty, self.aggregation)
        _check(self.eps >= 0, "advantage.eps", ">= 0", self.eps)


@dataclass(frozen=True)
class RLOOAdvantage:
    """``rloo``: REINFORCE leave-one-out (Ahmadian et al. 2024): per stream, a response's
    advantage is its end score minus the mean score of the other responses to its prompt
    (``functional.rloo_advantages``), given to each of its tokens. No critic is loaded, trained
    or saved. (Clipped and with several epochs when ``stage.update_epochs`` > 1, as PPO.)

    KL default ``reward``, as published (a KL-penalised sequence score): the baseline is linear
    in the scores, so the mixed advantage keeps a KL weight of exactly β for every λ, as GAE's.
    """

    kl_penalty: str = "reward"
    """``reward`` (in each stream's score) or ``loss`` (the k3 term in the actor's loss)."""
    aggregation: str = "sequence"
    """``sequence`` or ``budget``, as for ``GRPOAdvantage.aggregation``."""

    name: ClassVar[str] = "rloo"
    critics: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _check_group_options(self.kl_penalty, self.aggregation)


AdvantageEstimator = GAEAdvantage | GRPOAdvantage | RLOOAdvantage


CRITIC_SETTINGS = (
    "gamma",
    "gae_lambda",
    "critic_lr",
    "clip_range_value",
    "shared_critic",
)
"""``stage`` options that only GAE and its critics read (``save_critics`` is not one: it saves
the critics where the estimator has any, so a sweep over estimators may keep it on)."""


def unused_critic_settings(stage: PPOLagStageConfig, estimator: AdvantageEstimator) -> list[str]:
    """The ``stage`` keys set away from their defaults that ``estimator`` would ignore: the
    critics' and GAE's options under a critic-free estimator (critic start points count as set
    when they differ from the score model they default to)."""
    if estimator.critics:
        return []
    defaults = {f.name: f.default for f in fields(type(stage))}
    unused = [key for key in CRITIC_SETTINGS if getattr(stage, key) != defaults[key]]
    if stage.reward_critic_init != stage.reward_model:
        unused.append("reward_critic_init")
    if stage.cost_critic_init != stage.cost_model:
        unused.append("cost_critic_init")
    return unused


def require_used_critic_settings(stage: PPOLagStageConfig, estimator: AdvantageEstimator) -> None:
    """Refuse critic and GAE options that a critic-free estimator would silently ignore."""
    unused = unused_critic_settings(stage, estimator)
    if unused:
        keys = ", ".join(f"stage.{key}" for key in unused)
        raise ConfigError(
            f"config key '{'stage.' + unused[0]}': {keys} set, but advantage={estimator.name} "
            "has no critics and no GAE, so it would ignore them; remove them or use advantage=gae"
        )
