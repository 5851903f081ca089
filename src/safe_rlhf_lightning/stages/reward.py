"""Reward model R: Bradley–Terry on (better, worse) pairs of the helpfulness preference."""

from __future__ import annotations

import dataclasses

import pytorch_lightning as pl

from ..config import PreferenceStageConfig
from ..functional import reward_pairwise_loss, reward_tokenwise_loss
from ..models import ScoreModel
from ..types import PreferenceBatch
from .guards import FiniteGuard, guarded_loss
from .optim import configure_adamw
from .scoring import mean_and_std, score_pair


class RewardModule(pl.LightningModule):
    """Trains a score model so that the better response of each pair scores higher.

    Args:
        model: a score model (``score_type="reward"``).
        config: the stage's hyperparameters (``PreferenceStageConfig``, documented there).
    """

    def __init__(self, model: ScoreModel, config: PreferenceStageConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)
        self._val_rewards: list = []

    def _loss(self, batch: PreferenceBatch):
        pair = score_pair(
            self.model,
            batch.better_input_ids,
            batch.better_attention_mask,
            batch.worse_input_ids,
            batch.worse_attention_mask,
        )
        reg = self.config.regularization
        if self.config.loss_type == "token-wise":
            loss, stats = reward_tokenwise_loss(
                pair.first_scores,
                pair.second_scores,
                batch.better_attention_mask,
                batch.worse_attention_mask,
                batch.better_input_ids,
                batch.worse_input_ids,
                regularization=reg,
            )
        else:
            loss, stats = reward_pairwise_loss(pair.first_end, pair.second_end, regularization=reg)
        return loss, stats, pair

    def training_step(self, batch: PreferenceBatch, batch_idx: int):
        loss, stats, _ = self._loss(batch)
        if guarded_loss(self, loss) is None:  # not finite, skipped
            return None
        size = batch.better_input_ids.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self.log("train/reward_margin", stats["reward_margin"], batch_size=size)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_rewards = []

    def validation_step(self, batch: PreferenceBatch, batch_idx: int):
        loss, stats, pair = self._loss(batch)
        size = batch.better_input_ids.shape[0]
        self.log("val/loss", loss, batch_size=size)
        self.log("val/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self._val_rewards += [pair.first_end.detach(), pair.second_end.detach()]

    def on_validation_epoch_end(self) -> None:
        if self._val_rewards:
            mean, std = mean_and_std(self._val_rewards)
            self.log_dict({"val/reward_mean": mean, "val/reward_std": std})

    def configure_optimizers(self):
        return configure_adamw(self)
