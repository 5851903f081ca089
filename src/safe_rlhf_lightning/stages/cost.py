"""Cost model C: ranks (more harmful, safer) pairs and classifies by sign (C > 0 unsafe)."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytorch_lightning as pl
from torch import Tensor

from ..config import PreferenceStageConfig
from ..functional import cost_pairwise_loss, cost_tokenwise_loss, multi_head_cost_loss
from ..models import ScoreModel
from ..types import SafetyPreferenceBatch
from .guards import FiniteGuard, guarded_loss
from .optim import configure_adamw
from .scoring import mean_and_std, pair_end_scores, score_pair


class _Pair(NamedTuple):
    """The end costs logged as the validation's cost distribution (head 0 with several)."""

    first_end: Tensor
    second_end: Tensor


class CostModule(pl.LightningModule):
    """Trains a score model so that the more harmful response of each pair costs more and every
    response's cost has the sign of its safety label (paper eq. 6).

    With ``config.categories`` the model has one head per harm category, each trained on its
    category's labels (``functional.multi_head_cost_loss``), and every accuracy is logged per
    head (``<split>/accuracy/<category>``) beside its mean over heads.

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
        if self.config.categories:
            return self._multi_head_loss(batch)
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

    def _multi_head_loss(self, batch: SafetyPreferenceBatch):
        """One head per category; stats hold (K,) accuracies, also named per category."""
        safer, unsafer = pair_end_scores(
            self.model,
            batch.safer_input_ids,
            batch.safer_attention_mask,
            batch.unsafer_input_ids,
            batch.unsafer_attention_mask,
        )  # (B, K) each
        loss, stats = multi_head_cost_loss(
            safer,
            unsafer,
            batch.safer_sign,
            batch.unsafer_sign,
            regularization=self.config.regularization,
        )
        named = {"loss": stats["loss"]}
        for key in ("accuracy", "accuracy_sign"):
            per_head = stats[key]
            named[key] = per_head.nanmean()  # over the heads with pairs ordered in their category
            for category, value in zip(self.config.categories, per_head, strict=True):
                if not value.isnan():
                    named[f"{key}/{category}"] = value
        return loss, named, _Pair(safer[:, 0], unsafer[:, 0])

    def training_step(self, batch: SafetyPreferenceBatch, batch_idx: int):
        loss, stats, _ = self._loss(batch)
        if guarded_loss(self, loss) is None:  # not finite, skipped
            return None
        size = batch.safer_input_ids.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self.log("train/accuracy_sign", stats["accuracy_sign"], batch_size=size)
        for key in (k for k in stats if "/" in k):  # per category
            self.log(f"train/{key}", stats[key], batch_size=size)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_costs = []

    def validation_step(self, batch: SafetyPreferenceBatch, batch_idx: int):
        loss, stats, pair = self._loss(batch)
        size = batch.safer_input_ids.shape[0]
        self.log("val/loss", loss, batch_size=size)
        self.log("val/accuracy", stats["accuracy"], prog_bar=True, batch_size=size)
        self.log("val/accuracy_sign", stats["accuracy_sign"], prog_bar=True, batch_size=size)
        for key in (k for k in stats if "/" in k):  # per category
            self.log(f"val/{key}", stats[key], batch_size=size)
        self._val_costs += [pair.first_end.detach(), pair.second_end.detach()]

    def on_validation_epoch_end(self) -> None:
        if self._val_costs:
            mean, std = mean_and_std(self._val_costs)
            self.log_dict({"val/cost_mean": mean, "val/cost_std": std})

    def configure_optimizers(self):
        return configure_adamw(self)
