"""A train DataLoader that resumes mid-epoch with the batches an uninterrupted run would see.

Lightning saves ``state_dict()`` of every train loader that has one in its checkpoints and hands
it back through ``load_state_dict`` before iterating again (``CombinedLoader._state_dicts``).
The state is small and model-independent:

- ``batches``: how many batches the current pass has yielded;
- ``pass_generator``: the shuffle generator's state when the pass began;
- ``generator``: its state now.

Three rules make a resumed run exact:

1. A pass makes all its random draws at its first batch (the sampler's order is read in full
   then), so the generator's state no longer depends on whether the consumer asked for one
   batch past the end: Lightning does not for the loader that sets the epoch's length, its
   ``max_size_cycle`` mode does for a shorter loader it cycles.
2. A restored loader whose pass was unfinished puts the generator back to the pass's start and
   skips the yielded batches at the index level (nothing is loaded or collated twice); a
   finished pass starts the next one from the generator's current state.
3. A pass left unfinished by the consumer (the shorter loader of a ``CombinedLoader`` when the
   epoch ends, or ``limit_train_batches``) is continued by the next ``iter()``, not restarted,
   in a resumed run and in an uninterrupted one alike.

Lightning does not prefetch from loaders whose length it knows, so "yielded" equals "trained
on" when a checkpoint is written. The order of a pass is the plain DataLoader's (same generator
draws); for validation, use a plain DataLoader (rule 3 would shift its batches).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader


class _Skipping:
    """The loader's index sampler: each pass reads the whole order at its first batch (after
    the DataLoader has drawn its worker seed, as a plain pass does) and starts ``skip`` batches
    in. ``skip`` is set only while a pass's iterator is built (worker iterators read the
    sampler twice then)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.skip = 0

    def __iter__(self) -> Iterator[Any]:
        return self._pass(self.skip)

    def _pass(self, skip: int) -> Iterator[Any]:
        order = list(self.inner)
        yield from order[skip:]

    def __len__(self) -> int:
        return len(self.inner)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` (same arguments) with ``state_dict`` / ``load_state_dict``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skipping = _Skipping(DataLoader._index_sampler.fget(self))
        self._batches = 0
        self._in_pass = False
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
        if state is None and self._in_pass:  # rule 3: continue the abandoned pass
            state = self.state_dict()
        skip = 0
        if state is not None:
            unfinished = state["batches"] < len(self)
            saved = state["pass_generator"] if unfinished else state["generator"]
            if self.generator is not None and saved is not None:
                self.generator.set_state(saved)
            skip = state["batches"] if unfinished else 0
        self._pass_generator = self._generator_state()
        self._batches, self._in_pass = skip, True
        self._skipping.skip = skip
        try:
            batches = super().__iter__()
        finally:
            self._skipping.skip = 0
        return self._counted(batches)

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._batches += 1
            self._in_pass = self._batches < len(self)
            yield batch
        self._in_pass = False

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
