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


def test_same_batches_as_a_plain_dataloader():
    # 13 samples: the plain loader's sampler also draws at the end of each pass (partial batch).
    assert _passes(_make(ResumableDataLoader, 13, 4), 3) == _passes(_make(DataLoader, 13, 4), 3)
    # 12: the first pass is the plain one's; later passes differ (all draws at a pass's start).
    assert _passes(_make(ResumableDataLoader, 12, 4), 1) == _passes(_make(DataLoader, 12, 4), 1)


def _lightning(loader, count: int) -> list[list[int]]:
    """``count`` batches as Lightning's epoch loop takes them: never past ``len(loader)`` a
    pass, a new ``iter()`` per epoch."""
    seen: list[list[int]] = []
    while len(seen) < count:
        take = min(len(loader), count - len(seen))
        seen += [b.tolist() for b in itertools.islice(iter(loader), take)]
    return seen


def _cycled(loader, count: int) -> list[list[int]]:
    """``count`` batches as Lightning's max_size_cycle takes a shorter loader: until
    StopIteration, then a new pass."""
    seen, iterator = [], iter(loader)
    while len(seen) < count:
        try:
            seen.append(next(iterator).tolist())
        except StopIteration:
            iterator = iter(loader)
    return seen


@pytest.mark.parametrize("size", [12, 13])
@pytest.mark.parametrize("stop", [0, 1, 2, 3, 4])  # 3 (or 4 at size 13) = the pass just finished
@pytest.mark.parametrize("protocol", ["lightning", "cycled"])
def test_restored_loader_continues_like_the_uninterrupted_one(size, stop, protocol):
    per_pass = -(-size // 4)
    stop = min(stop, per_pass)
    total = 4 * per_pass
    take = _lightning if protocol == "lightning" else _cycled
    reference = take(_make(ResumableDataLoader, size, 4), total)

    first = _make(ResumableDataLoader, size, 4)
    seen = take(first, per_pass + stop)  # one full pass, then `stop` batches of the second
    state = first.state_dict()
    assert state["batches"] == (stop or per_pass)  # 0 = the first pass finished

    restored = _make(ResumableDataLoader, size, 4)  # a new process: a fresh generator
    restored.load_state_dict(state)
    seen += take(restored, total - len(seen))
    assert seen == reference


def test_an_abandoned_pass_is_continued_not_restarted():
    """Lightning's CombinedLoader calls iter() on a shorter loader at every epoch start."""
    loader = _make(ResumableDataLoader, 12, 4, shuffle=False)
    assert [b.tolist() for b in itertools.islice(iter(loader), 1)] == [[0, 1, 2, 3]]
    assert [b.tolist() for b in loader] == [[4, 5, 6, 7], [8, 9, 10, 11]]
    assert [b.tolist() for b in itertools.islice(iter(loader), 1)] == [[0, 1, 2, 3]]  # new pass


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
