"""Atomic file writes: every result file (datasets, reports, tables) goes to a temporary sibling
first and is renamed into place, so a reader or a crash never sees half a file and the previous
copy stays whole until the new one is complete. (Model folders: ``models.io``.)"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class DiskFullError(OSError):
    """The device (or the user's quota) filled up while a file was written atomically: the
    temporary file was removed and the file keeps its previous content. Its message is one line
    naming the file, the space it needed (or had written when the disk filled) and what is free."""

    def __init__(self, path: Path, written: int, free: int, needed: int | None = None) -> None:
        self.path, self.written, self.free, self.needed = path, written, free, needed
        size = (
            f"it needs {needed:,} bytes"
            if needed is not None
            else f"{written:,} bytes were written when the disk filled"
        )
        previous = "its previous copy is intact" if path.exists() else "nothing was left there"
        super().__init__(
            f"no space left on the device while writing {path}: {size}, {free:,} bytes are free "
            f"in {path.parent}; {previous}. Free some space or move the run folder"
        )
        self.errno = errno.ENOSPC  # still what an `except OSError` checking errno expects

    def with_needed(self, needed: int) -> DiskFullError:
        """The same error, stating the whole size of what was being written."""
        return DiskFullError(self.path, self.written, self.free, needed)


def disk_full(error: BaseException | None) -> bool:
    """Whether ``error``, or an exception it was raised from or while handling, is a full disk
    or quota. (``torch.save`` turns the ``OSError`` of a full disk into a ``RuntimeError`` of its
    zip writer, raised while handling it; safetensors into a ``SafetensorError``.)"""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        # safetensors (Rust) reports it as its own error type with the OS error in the text.
        if any(f"(os error {code})" in str(error) for code in (errno.ENOSPC, errno.EDQUOT)):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file opened in ``mode`` ("w" text UTF-8, "wb" bytes) on a temporary sibling of ``path``;
    on a clean exit it is flushed, fsynced and renamed onto ``path``; on any error (a kill
    included) ``path`` keeps its previous content and the temporary file is removed or left
    as a hidden ``.<name>.*.tmp``. A full disk raises :class:`DiskFullError`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file writes with mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        text = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
        with os.fdopen(descriptor, mode, **text) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        written = _size(temporary)
        Path(temporary).unlink(missing_ok=True)
        if disk_full(error):
            # One line for the user instead of the OSError and the writer's errors it set off.
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(path, written, free) from None
        raise


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 (newlines untouched), flushed to disk before the rename."""
    with atomic_file(path) as file:
        file.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, payload: object, *, sort_keys: bool = True) -> Path:
    text = json.dumps(payload, indent=2, sort_keys=sort_keys, ensure_ascii=False)
    return write_text_atomic(path, text + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    return write_text_atomic(
        path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    )


def write_csv_atomic(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def save_figure_atomic(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, save (format from the suffix) atomically and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    figure.tight_layout()
    with atomic_file(path, "wb") as file:
        figure.savefig(file, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    plt.close(figure)
    return path


# ---------------------------------------------------------------------------------------------
# Files that grow by appends (e.g. PPO's samples_train.jsonl): a kill can still tear the last
# line, so appends are whole lines in one write and the reader drops a torn tail.
# ---------------------------------------------------------------------------------------------


def append_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append ``rows`` as JSON lines in one write, then fsync: a crash leaves the file as it
    was, or (a kill or a full disk inside the write) with a torn last line that
    ``data.read_jsonl_rows`` drops. A writer that resumes such a file rewrites what it read back
    before its first append (else that append would continue the torn line)."""
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it in one write unless interrupted
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
