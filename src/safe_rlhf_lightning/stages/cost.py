"""Cost model C: ranks (more harmful, safer) pairs and classifies by sign (C > 0 unsafe)."""

from __future__ import annotations

import dataclasses

import pytorch_lightning as pl

from ..config import PreferenceStageConfig
from ..functional import cost_pairwise_loss, cost_tokenwise_loss
from ..models import ScoreModel
from ..types import SafetyPreferenceBatch
from .guards import FiniteGuard, guarded_loss
from .optim import configure_adamw
from .scoring import mean_and_std, score_pair


class CostModule(pl.LightningModule):
    """Trains a score model so that the more harmful response of each pair costs more and every
    response's cost has the sign of its safety label (paper eq. 6).

    Args:
        model: a score model (``score_type="cost"``; its normalizer only scales, keeping signs).
        config: the stage's hyperparameters (``PreferenceStageConfig``, documented there).
    """

    def __init__(self, model: ScoreModel, config: PreferenceStageConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)
        self._val_costs: list = []

    def _loss(self, batch: SafetyPreferenceBatch):
        pair = score_pair(
            self.model,
            batch.safer_input_ids,
            batch.safer_attention_mask,
            batch.unsafer_input_ids,
            batch.unsafer_attention_mask,
        )
        reg = self.config.regularization
        if self.config.loss_type == "token-wise":
            loss, stats = cost_tokenwise_loss(
                pair.first_scores,
                pair.second_scores,
                batch.safer_attention_mask,
                batch.unsafer_attention_mask,
                batch.safer_input_ids,
                batch.unsafer_input_ids,
                batch.safer_sign,
                batch.unsafer_sign,
                regularization=reg,
            )
        else:
            loss, stats = cost_pairwise_loss(
                pair.first_end,
                pair.second_end,
                batch.safer_sign,
                batch.unsafer_sign,
                regularization=reg,
            )
        return loss, stats, pair

    def training_step(self, batch: SafetyPreferenceBatch, batch_idx: int):
        loss, stats, _ = self._loss(batch)
        if guarded_loss(self, loss) is None:  # not finite, skipped
            return None
        size = batch.safer_input_ids.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self.log("train/accuracy_sign", stats["accuracy_sign"], batch_size=size)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_costs = []

    def validation_step(self, batch: SafetyPreferenceBatch, batch_idx: int):
        loss, stats, pair = self._loss(batch)
        size = batch.safer_input_ids.shape[0]
        self.log("val/loss", loss, batch_size=size)
        self.log("val/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self.log("val/accuracy_sign", stats["accuracy_sign"], prog_bar=True, batch_size=size)
        self._val_costs += [pair.first_end.detach(), pair.second_end.detach()]

    def on_validation_epoch_end(self) -> None:
        if self._val_costs:
            mean, std = mean_and_std(self._val_costs)
            self.log_dict({"val/cost_mean": mean, "val/cost_std": std})

    def configure_optimizers(self):
        return configure_adamw(self)
