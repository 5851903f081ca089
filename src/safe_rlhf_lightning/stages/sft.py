"""Supervised fine-tuning: next-token loss on the response tokens of demonstrations."""

from __future__ import annotations

import dataclasses

import pytorch_lightning as pl
from transformers import PreTrainedModel

from ..config import SFTStageConfig
from ..functional import sft_loss
from ..types import SupervisedBatch
from .guards import FiniteGuard, guarded_loss
from .optim import configure_adamw


class SFTModule(pl.LightningModule):
    """Fine-tunes ``model`` on (prompt, response) batches; the loss ignores prompt and padding.

    Args:
        model: a Hugging Face causal LM (already sized to its tokenizer).
        config: the stage's hyperparameters (``SFTStageConfig``, documented there).
    """

    def __init__(self, model: PreTrainedModel, config: SFTStageConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)

    def _loss(self, batch: SupervisedBatch):
        logits = self.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits  # no KV cache in training (activation checkpointing would drop it anyway)
        return sft_loss(logits, batch.input_ids, batch.loss_mask)

    def training_step(self, batch: SupervisedBatch, batch_idx: int):
        loss, stats = self._loss(batch)
        if guarded_loss(self, loss) is None:  # not finite, skipped
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.input_ids.shape[0])
        self.log("train/num_tokens", stats["num_tokens"], reduce_fx="sum")
        return loss

    def validation_step(self, batch: SupervisedBatch, batch_idx: int):
        loss, _ = self._loss(batch)
        # Weighted by sequences, so the epoch value is a mean over validation examples' batches.
        self.log("val/loss", loss, prog_bar=True, batch_size=batch.input_ids.shape[0])

    def configure_optimizers(self):
        return configure_adamw(self)
