"""LightningDataModules: dataset specs in, DataLoaders of ``types.py`` batches out.

They only wire :func:`load_records_with_stats`, the tokenized datasets and the collators
together; every option is documented on :class:`SupervisedDataModule`. A split left with no
example is a :class:`RecordError` that says which records went and why.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from safe_rlhf_lightning.data.collate import (
    PreferenceCollator,
    PromptCollator,
    SafetyPreferenceCollator,
    SupervisedCollator,
    eos_token_id,
)
from safe_rlhf_lightning.data.dataset import (
    ExampleList,
    PreferenceDataset,
    PromptDataset,
    SafetyPreferenceDataset,
    SupervisedDataset,
)
from safe_rlhf_lightning.data.loading import load_records_with_stats, no_usable_records
from safe_rlhf_lightning.data.records import Record, RecordKind
from safe_rlhf_lightning.data.resumable import ResumableDataLoader
from safe_rlhf_lightning.data.template import PromptTemplate

logger = logging.getLogger(__name__)


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokenizer's pad id, else its EOS id (padding is masked out either way)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    logger.info("tokenizer has no pad token; padding with the EOS token")
    return eos_token_id(tokenizer)


class _TokenizedDataModule(pl.LightningDataModule, ABC):
    """Shared wiring; subclasses say which record kind, dataset and collator they use."""

    kind: RecordKind

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        train_datasets: Sequence[str],
        eval_datasets: Sequence[str] = (),
        *,
        data_root: str | Path | None = None,
        template: PromptTemplate | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_records: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.train_datasets = list(train_datasets)
        self.eval_datasets = list(eval_datasets)
        self.data_root = data_root
        self.template = template or PromptTemplate()
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.skip_bad_records = skip_bad_records
        self.seed = seed
        self.train_dataset: Dataset[Any] | None = None
        self.eval_dataset: Dataset[Any] | None = None

    @abstractmethod
    def _make_dataset(self, records: list[Record]) -> ExampleList[Any]: ...

    @abstractmethod
    def _make_collator(self) -> Callable[[list[Any]], Any]: ...

    def _load(self, specs: list[str]) -> ExampleList[Any]:
        records, stats = load_records_with_stats(
            specs,
            self.kind,
            data_root=self.data_root,
            skip_bad_records=self.skip_bad_records,
            seed=self.seed,
        )
        dataset = self._make_dataset(records)
        if len(dataset) == 0:
            # A DataLoader over nothing fails deep inside torch; say which data and why instead.
            raise no_usable_records(
                [source.label for source in stats],
                {
                    "skipped as bad records": sum(source.num_skipped for source in stats)
                    + dataset.num_skipped,
                    "dropped as identical after tokenization": dataset.num_identical,
                },
            )
        return dataset

    def setup(self, stage: str | None = None) -> None:
        # Loads once: Lightning calls setup for every stage (fit, validate, ...).
        if self.train_dataset is None and stage in (None, "fit") and self.train_datasets:
            self.train_dataset = self._load(self.train_datasets)
        if self.eval_dataset is None and self.eval_datasets:
            self.eval_dataset = self._load(self.eval_datasets)

    def _loader(self, dataset: Dataset[Any], batch_size: int, shuffle: bool) -> DataLoader[Any]:
        # Train loaders resume mid-epoch (a killed run continues with the batches it would have
        # seen); validation loaders are plain, so every validation sees the same batches.
        loader_class = ResumableDataLoader if shuffle else DataLoader
        return loader_class(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=self._make_collator(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        if self.train_dataset is None:
            self.setup("fit")
        if self.train_dataset is None:
            raise ValueError(f"{type(self).__name__} has no train_datasets")
        return self._loader(self.train_dataset, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader[Any] | list[DataLoader[Any]]:
        if self.eval_dataset is None:
            self.setup("validate")
        if self.eval_dataset is None:
            return []  # no eval_datasets: Lightning skips validation
        return self._loader(self.eval_dataset, self.eval_batch_size, shuffle=False)


class SupervisedDataModule(_TokenizedDataModule):
    """SFT data: batches of :class:`~safe_rlhf_lightning.types.SupervisedBatch`.

    Args:
        tokenizer: any Hugging Face tokenizer with an EOS token (pad falls back to EOS).
        train_datasets: dataset specs ``name[:proportion[:path]]`` mixed into the train set.
        eval_datasets: specs for validation; empty means no validation.
        data_root: folder of the embedded benchmark's files (``benchmark-*`` names).
        template: the conversation template (upstream safe-rlhf's by default).
        max_length: tokens per sequence (responses are truncated, see ``collate.py``).
        batch_size: train batch size; ``eval_batch_size`` defaults to it.
        num_workers: DataLoader worker processes.
        skip_bad_records: skip and count invalid records instead of raising.
        seed: for the mixing of fractional proportions and the train shuffle order.
    """

    kind: RecordKind = "supervised"

    def _make_dataset(self, records: list[Record]) -> ExampleList[Any]:
        return SupervisedDataset(
            records, self.tokenizer, self.template, self.max_length, self.skip_bad_records
        )

    def _make_collator(self) -> Callable[[list[Any]], Any]:
        return SupervisedCollator(pad_token_id(self.tokenizer))


class PreferenceDataModule(_TokenizedDataModule):
    """Preference pairs for the reward model (``safety=False``: ``PreferenceBatch`` of better and
    worse) or the cost model (``safety=True``: ``SafetyPreferenceBatch`` of safer and unsafer
    with safety signs; with ``categories``, one sign per harm category for a multi-head cost
    model). Other arguments as :class:`SupervisedDataModule`."""

    kind: RecordKind = "preference"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        train_datasets: Sequence[str],
        eval_datasets: Sequence[str] = (),
        *,
        safety: bool = False,
        categories: Sequence[str] | None = None,
        data_root: str | Path | None = None,
        template: PromptTemplate | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_records: bool = False,
        seed: int = 42,
    ) -> None:
        super().__init__(
            tokenizer,
            train_datasets,
            eval_datasets,
            data_root=data_root,
            template=template,
            max_length=max_length,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            skip_bad_records=skip_bad_records,
            seed=seed,
        )
        self.safety, self.categories = safety, categories

    def _make_dataset(self, records: list[Record]) -> ExampleList[Any]:
        options = (self.tokenizer, self.template, self.max_length, self.skip_bad_records)
        if self.safety:
            return SafetyPreferenceDataset(records, *options, categories=self.categories)
        return PreferenceDataset(records, *options)

    def _make_collator(self) -> Callable[[list[Any]], Any]:
        collator_type = SafetyPreferenceCollator if self.safety else PreferenceCollator
        return collator_type(pad_token_id(self.tokenizer))


class PromptDataModule(_TokenizedDataModule):
    """Prompts for PPO rollouts and evaluation: left-padded ``PromptBatch``es. Any source with a
    prompt field works; repeated prompts are dropped. ``max_length`` bounds the prompt (a longer
    one is a record error). Other arguments as :class:`SupervisedDataModule`."""

    kind: RecordKind = "prompt"

    def _make_dataset(self, records: list[Record]) -> ExampleList[Any]:
        return PromptDataset(
            records, self.tokenizer, self.template, self.max_length, self.skip_bad_records
        )

    def _make_collator(self) -> Callable[[list[Any]], Any]:
        return PromptCollator(pad_token_id(self.tokenizer))
