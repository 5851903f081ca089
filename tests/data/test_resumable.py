"""ResumableDataLoader: identical to a plain DataLoader, and a restored copy continues exactly."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from safe_rlhf_lightning.data.resumable import ResumableDataLoader


def _make(cls, size: int, batch_size: int, shuffle: bool = True, workers: int = 0):
    return cls(
        list(range(size)),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(7) if shuffle else None,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def _passes(loader, passes: int, stop_after: int | None = None) -> list[list[int]]:
    """Batches of ``passes`` passes as Lightning takes them: ``len(loader)`` per pass and never
    one more (so a pass never reaches StopIteration); the last pass stops after ``stop_after``."""
    seen = []
    for index in range(passes):
        take = stop_after if index == passes - 1 and stop_after is not None else len(loader)
        seen += [b.tolist() for b in itertools.islice(iter(loader), take)]
    return seen


@pytest.mark.parametrize("size", [12, 13])  # a partial last batch draws from the generator too
def test_same_batches_as_a_plain_dataloader(size):
    assert _passes(_make(ResumableDataLoader, size, 4), 3) == _passes(_make(DataLoader, size, 4), 3)


@pytest.mark.parametrize("size", [12, 13])
@pytest.mark.parametrize("stop", [0, 1, 2, 3, 4])  # 3 (or 4 at size 13) = the pass just finished
@pytest.mark.parametrize("shuffle", [True, False])
def test_restored_loader_continues_like_the_uninterrupted_one(size, stop, shuffle):
    per_pass = -(-size // 4)
    stop = min(stop, per_pass)
    reference = _passes(_make(DataLoader, size, 4, shuffle), 4)

    first = _make(ResumableDataLoader, size, 4, shuffle)
    seen = _passes(first, 2, stop_after=stop)  # one full pass, then `stop` batches of the second
    state = first.state_dict()
    assert state["batches"] == stop

    restored = _make(ResumableDataLoader, size, 4, shuffle)  # a new process: fresh generator
    restored.load_state_dict(state)
    if stop < per_pass:  # the rest of the interrupted pass (Lightning counts the first `stop`)
        seen += [b.tolist() for b in itertools.islice(iter(restored), per_pass - stop)]
    while len(seen) < len(reference):
        seen += _passes(restored, 1)
    assert seen[: len(reference)] == reference


def test_index_level_skip_loads_nothing_twice():
    loaded = []

    class Recording(list):
        def __getitem__(self, index):
            loaded.append(index)
            return super().__getitem__(index)

    loader = ResumableDataLoader(Recording(range(10)), batch_size=2, shuffle=False)
    loader.load_state_dict({"batches": 3, "pass_generator": None, "generator": None})
    assert [b.tolist() for b in loader] == [[6, 7], [8, 9]]
    assert loaded == [6, 7, 8, 9]
    assert len(loader) == 5  # the full pass: Lightning counts the skipped batches as done


def test_persistent_workers_skip_only_once():
    loader = _make(ResumableDataLoader, 12, 4, shuffle=False, workers=1)
    loader.load_state_dict({"batches": 2, "pass_generator": None, "generator": None})
    assert [b.tolist() for b in loader] == [[8, 9, 10, 11]]
    assert len([b for b in loader]) == 3


def test_a_foreign_state_is_refused_naming_the_keys():
    with pytest.raises(ValueError, match=r"needs the keys \['generator', 'pass_generator'\]"):
        _make(ResumableDataLoader, 8, 4).load_state_dict({"batches": 1})
