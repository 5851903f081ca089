"""Progress bars for the long loops outside Lightning's ``fit`` (sampling and scoring a policy's
responses, the collect stage's probe): rich bars that look like Lightning's own, shown when the
stage's trainer shows its bar (``trainer.enable_progress_bar``) and on global rank 0 only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

Item = TypeVar("Item")

_ENABLED: ContextVar[bool] = ContextVar("progress_bars", default=True)


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Inside, :func:`progress` shows its bar only when ``enabled`` (a stage sets it from
    ``trainer.enable_progress_bar``; the second job of a pair that shares a terminal turns it
    off, as it turns off Lightning's)."""
    token = _ENABLED.set(enabled)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def bars_enabled() -> bool:
    from .distributed import is_global_zero

    return _ENABLED.get() and is_global_zero()


def progress(items: Iterable[Item], description: str | None, total: int | None = None):
    """``items``, with a bar named ``description`` over them (None, or bars turned off by
    :func:`progress_bars`: the items alone). Like Lightning's rich bar it redraws in a
    terminal and prints its last state once when the output is a file or a pipe."""
    if description is None or not bars_enabled():
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("•"),
        TimeRemainingColumn(),
    )
    total = total if total is not None else _length(items)
    with Progress(*columns) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def _length(items: Iterable) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None
