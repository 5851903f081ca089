"""Direct preference optimisation: DPO, IPO or KTO on one preference axis, against a frozen
reference policy (no reward model, no cost model, no sampling)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor
from transformers import PreTrainedModel

from ..config import DirectPreferenceStageConfig, DPOStageConfig
from ..functional import (
    diverging_span_mask,
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    sequence_logprobs,
)
from ..types import PreferenceBatch, SafetyPreferenceBatch
from .frozen import require_trained_weights, without_frozen
from .guards import FiniteGuard, guarded_loss
from .optim import configure_adamw

FROZEN = ("reference.",)
"""State-dict prefix of the frozen reference: left out of checkpoints (read from its folder)."""


def chosen_and_rejected(
    batch: PreferenceBatch | SafetyPreferenceBatch,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(chosen ids, chosen mask, rejected ids, rejected mask) of the batch's axis: better/worse
    pairs (helpfulness) or safer/unsafer pairs (harmlessness), each (B, L)."""
    if isinstance(batch, SafetyPreferenceBatch):
        return (
            batch.safer_input_ids,
            batch.safer_attention_mask,
            batch.unsafer_input_ids,
            batch.unsafer_attention_mask,
        )
    return (
        batch.better_input_ids,
        batch.better_attention_mask,
        batch.worse_input_ids,
        batch.worse_attention_mask,
    )


def pair_logprobs(
    model: PreTrainedModel,
    chosen_ids: Tensor,
    chosen_mask: Tensor,
    rejected_ids: Tensor,
    rejected_mask: Tensor,
) -> tuple[Tensor, Tensor]:
    """(B,) summed log-probs of the chosen and the rejected responses, in one forward pass.

    The preference batches carry no prompt boundary, so the sums run from the first token where
    the two sequences differ (``diverging_span_mask``): the prompt and any shared start of the
    responses have the same log-probability in both (causal attention, right padding), so the
    DPO and IPO losses and the reward margin are exactly those of whole-response sums; each
    response's own implicit reward leaves out the shared start."""
    span = diverging_span_mask(chosen_ids, rejected_ids, chosen_mask, rejected_mask)  # (B, L)
    input_ids = torch.cat([chosen_ids, rejected_ids])  # (2B, L)
    attention_mask = torch.cat([chosen_mask, rejected_mask])
    token_mask = torch.cat([span & chosen_mask, span & rejected_mask])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    chosen, rejected = sequence_logprobs(logits, input_ids, token_mask).chunk(2)
    return chosen, rejected


def preference_loss(
    chosen: Tensor,
    rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    config: DirectPreferenceStageConfig,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of ``config.loss_type`` (dpo, ipo or kto, with the config's β, label smoothing
    and KTO weights) on (B,) summed log-probs of the chosen and the rejected responses under
    the policy and the reference; the stats every direct-preference stage logs (``loss``,
    ``accuracy``, ``reward_margin``, ``chosen_reward``, ``rejected_reward``)."""
    hp = config
    if hp.loss_type == "dpo":
        return dpo_loss(
            chosen,
            rejected,
            ref_chosen,
            ref_rejected,
            beta=hp.beta,
            label_smoothing=hp.label_smoothing,
        )
    if hp.loss_type == "ipo":
        return ipo_loss(chosen, rejected, ref_chosen, ref_rejected, beta=hp.beta)
    # KTO on the pairs unpaired: chosen responses desirable, rejected ones undesirable.
    logprobs = torch.cat([chosen, rejected])  # (2B,)
    ref_logprobs = torch.cat([ref_chosen, ref_rejected])
    desirable = torch.arange(logprobs.shape[0], device=logprobs.device) < chosen.shape[0]
    # Deliberate deviation from the paper: z_0 from the batch's own responses, not from
    # mismatched (prompt, other response) pairs, which the dpo stage's batches cannot form (no
    # prompt boundary). Detached either way; it biases z_0 up as the policy learns.
    reference_point = kto_reference_point(logprobs, ref_logprobs)
    loss, stats = kto_loss(
        logprobs,
        ref_logprobs,
        desirable,
        reference_point,
        beta=hp.beta,
        desirable_weight=hp.kto_desirable_weight,
        undesirable_weight=hp.kto_undesirable_weight,
    )
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)  # (B,) per pair
    return loss, {**stats, "accuracy": (margin.detach() > 0).float().mean()}


class DPOModule(pl.LightningModule):
    """Trains ``policy`` on preference pairs with the DPO, IPO or KTO loss
    (``config.loss_type``) against the frozen ``reference``.

    Args:
        policy: a Hugging Face causal LM, the model trained.
        reference: π_ref of the implicit reward, frozen here (eval mode, no gradients) and left
            out of checkpoints.
        config: the stage's hyperparameters (``DPOStageConfig``, documented there).
    """

    def __init__(
        self, policy: PreTrainedModel, reference: PreTrainedModel, config: DPOStageConfig
    ) -> None:
        super().__init__()
        self.model = policy  # ``model``: the name configure_adamw trains
        self.reference = reference.eval().requires_grad_(False)
        self.strict_loading = False  # checkpoints leave out the reference's weights
        self.config = config
        self.save_hyperparameters(dataclasses.asdict(config))  # plain values: weights_only loads
        self.guard = FiniteGuard(config.skip_nonfinite, owner=self)

    def train(self, mode: bool = True):
        super().train(mode)
        self.reference.eval()  # Lightning sets train mode on the whole module at fit start
        return self

    def _loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        pair = chosen_and_rejected(batch)
        chosen, rejected = pair_logprobs(self.model, *pair)
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logprobs(self.reference, *pair)
        return preference_loss(chosen, rejected, ref_chosen, ref_rejected, self.config)

    def _log_stats(self, split: str, stats: dict[str, Tensor], size: int) -> None:
        for name in ("loss", "accuracy", "reward_margin", "chosen_reward", "rejected_reward"):
            self.log(f"{split}/{name}", stats[name], prog_bar=name == "loss", batch_size=size)

    def training_step(self, batch, batch_idx: int):
        loss, stats = self._loss(batch)
        if guarded_loss(self, loss) is None:  # not finite, skipped
            return None
        self._log_stats("train", stats, chosen_and_rejected(batch)[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx: int):
        _, stats = self._loss(batch)
        self._log_stats("val", stats, chosen_and_rejected(batch)[0].shape[0])

    def configure_optimizers(self):
        return configure_adamw(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = without_frozen(checkpoint["state_dict"], FROZEN)
        checkpoint["skipped_batches"] = self.guard.skipped

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        require_trained_weights(self.state_dict(), checkpoint, FROZEN)
        self.guard.skipped = checkpoint.get("skipped_batches", 0)
