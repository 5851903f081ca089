"""The LightningDataModules, alone and driven by a Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from safe_rlhf_lightning.data import (
    PreferenceDataModule,
    PromptDataModule,
    RecordError,
    SafetyPreferenceDataset,
    SupervisedDataModule,
)
from safe_rlhf_lightning.types import (
    PreferenceBatch,
    PromptBatch,
    SafetyPreferenceBatch,
    SupervisedBatch,
)

from .conftest import preference_row, write_jsonl


def test_supervised_datamodule(tokenizer, data_root: Path) -> None:
    module = SupervisedDataModule(
        tokenizer,
        ["benchmark-sft/train:0.5"],
        ["benchmark-sft/test"],
        data_root=data_root,
        batch_size=2,
        eval_batch_size=3,
        max_length=64,
    )
    module.setup("fit")
    train_dataset = module.train_dataset
    module.setup("validate")
    assert module.train_dataset is train_dataset  # loaded once
    assert len(train_dataset) == 5 and len(module.eval_dataset) == 4
    batch = next(iter(module.train_dataloader()))
    assert isinstance(batch, SupervisedBatch) and batch.input_ids.shape[0] == 2
    assert [len(b.input_ids) for b in module.val_dataloader()] == [3, 1]


def test_train_order_is_seeded(tokenizer, data_root: Path) -> None:
    def first_batches(seed: int) -> list[list[list[int]]]:
        module = SupervisedDataModule(
            tokenizer, ["benchmark-sft/train"], data_root=data_root, batch_size=4, seed=seed
        )
        return [batch.input_ids.tolist() for batch in module.train_dataloader()]

    assert first_batches(3) == first_batches(3)
    assert any(first_batches(3) != first_batches(seed) for seed in range(4, 8))


def test_preference_datamodule_reward_and_cost(tokenizer, data_root: Path) -> None:
    reward = PreferenceDataModule(
        tokenizer, ["benchmark-preference/train"], data_root=data_root, batch_size=4
    )
    assert isinstance(next(iter(reward.train_dataloader())), PreferenceBatch)
    assert reward.val_dataloader() == []

    cost = PreferenceDataModule(
        tokenizer,
        ["benchmark-preference/train"],
        ["benchmark-preference/test"],
        safety=True,
        data_root=data_root,
        batch_size=4,
    )
    cost.setup()
    assert isinstance(cost.train_dataset, SafetyPreferenceDataset)
    batch = next(iter(cost.val_dataloader()))
    assert isinstance(batch, SafetyPreferenceBatch)
    assert batch.safer_sign.tolist() == [-1] * 4 and batch.unsafer_sign.tolist() == [1] * 4


def test_prompt_datamodule_left_pads(tokenizer, data_root: Path) -> None:
    module = PromptDataModule(
        tokenizer, ["benchmark-preference/train", "benchmark-prompts/train"], data_root=data_root
    )
    batch = next(iter(module.train_dataloader()))
    assert isinstance(batch, PromptBatch) and batch.input_ids.shape[0] == 20
    assert batch.attention_mask[:, -1].all()


class _CountingModule(pl.LightningModule):
    """Checks that batches arrive whole and typed; trains one parameter so fit runs."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[type] = []

    def training_step(self, batch: SupervisedBatch, batch_index: int) -> torch.Tensor:
        self.seen.append(type(batch))
        return (self.weight - batch.loss_mask.float().mean()) ** 2

    def validation_step(self, batch: SupervisedBatch, batch_index: int) -> None:
        self.seen.append(type(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:Total length of `list` across ranks is zero")
def test_trainer_fit_without_eval_datasets(tokenizer, data_root: Path, tmp_path: Path) -> None:
    module = _CountingModule()
    data = SupervisedDataModule(
        tokenizer, ["benchmark-sft/train"], data_root=data_root, batch_size=4
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    assert module.seen == [SupervisedBatch] * 3  # no validation steps


def test_trainer_validates_eval_datasets(tokenizer, data_root: Path, tmp_path: Path) -> None:
    module = _CountingModule()
    data = SupervisedDataModule(
        tokenizer,
        ["benchmark-sft/train"],
        ["benchmark-sft/test"],
        data_root=data_root,
        batch_size=4,
    )
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=data)
    assert len(module.seen) == 3 + 1  # three train batches, one validation batch


# ------------------------------------------------------------------ a split left empty


def test_a_train_split_left_empty_says_which_records_went_and_why(
    tokenizer, tmp_path: Path
) -> None:
    """Every pair skipped as bad or identical once tokenized: one error, not torch's
    ``num_samples should be a positive integer value`` from an empty DataLoader."""
    rows = [
        preference_row(0, better_response_id=2),  # bad: skipped when reading
        preference_row(1, response_0="  Same.", response_1="Same."),  # the same tokens twice
        preference_row(2, safer_response_id=1),  # inconsistent safety labels: bad for C only
    ]
    cases = [
        (False, rows[:2], "1 skipped as bad records, 1 dropped as identical after tokenization"),
        (True, rows, "2 skipped as bad records, 1 dropped as identical after tokenization"),
    ]
    for safety, kept_rows, reasons in cases:
        path = write_jsonl(tmp_path / f"pairs_{safety}.jsonl", kept_rows)
        data = PreferenceDataModule(
            tokenizer, [str(path)], safety=safety, skip_bad_records=True, batch_size=2
        )
        with pytest.raises(RecordError) as caught:
            data.train_dataloader()
        assert str(caught.value) == f"no usable records in {path}: {reasons}"


def test_an_empty_prompt_split_is_an_error(tokenizer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "word " * 50}])
    data = PromptDataModule(tokenizer, [str(path)], max_length=16, skip_bad_records=True)
    with pytest.raises(RecordError, match=rf"no usable records in {path}: 1 skipped as bad"):
        data.train_dataloader()
