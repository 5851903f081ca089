"""A DataLoader that resumes mid-epoch with the same batches an uninterrupted run would see.

Lightning saves ``state_dict()`` of every train loader that has one in its checkpoints and hands it
back through ``load_state_dict`` before iterating again (``CombinedLoader._state_dicts``). The
state kept here is small and model-independent:

- ``batches``: how many batches the current pass has yielded;
- ``pass_generator``: the shuffle generator's state when the pass began;
- ``generator``: its state now.

A restored loader whose pass was unfinished puts the generator back to the pass's start and
skips the yielded batches at the index level (no sample is loaded or collated twice), so the
generator makes the same draws in the same order as in the uninterrupted run and the rest of
the pass is identical. A finished pass starts the next one from the generator's current state.
This is exact because Lightning does not prefetch from loaders whose length it knows, so
"yielded" equals "trained on" when a checkpoint is written.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class _Skipping:
    """The loader's index sampler, starting ``skip`` batches in while ``skip`` is set (only
    while a pass's iterator is built: worker iterators read the sampler twice then)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.skip = 0

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def __len__(self) -> int:
        return len(self.inner)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` (same arguments) with ``state_dict`` / ``load_state_dict``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skipping = _Skipping(DataLoader._index_sampler.fget(self))
        self._batches = 0
        self._pass_generator = self._generator_state()
        self._resume: dict[str, Any] | None = None

    @property
    def _index_sampler(self) -> Any:
        # DataLoader's iterators read this once per pass (also when workers persist).
        skipping = self.__dict__.get("_skipping")
        return skipping if skipping is not None else DataLoader._index_sampler.fget(self)

    def _generator_state(self) -> Any:
        return None if self.generator is None else self.generator.get_state()

    def __iter__(self) -> Iterator[Any]:
        state, self._resume = self._resume, None
        skip = 0
        if state is not None:
            unfinished = state["batches"] < len(self)
            saved = state["pass_generator"] if unfinished else state["generator"]
            if self.generator is not None and saved is not None:
                self.generator.set_state(saved)
            skip = state["batches"] if unfinished else 0
        self._pass_generator = self._generator_state()
        self._batches = skip
        self._skipping.skip = skip
        try:
            batches = super().__iter__()
        finally:
            self._skipping.skip = 0
        return self._counted(batches)

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "batches": self._batches,
            "pass_generator": self._pass_generator,
            "generator": self._generator_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Applied at the next ``iter()``: Lightning loads the state, then starts iterating."""
        missing = {"batches", "pass_generator", "generator"} - set(state_dict)
        if missing:
            raise ValueError(
                f"a {type(self).__name__} state needs the keys {sorted(missing)}; "
                f"got {sorted(state_dict)} (a checkpoint from another loader?)"
            )
        self._resume = dict(state_dict)
