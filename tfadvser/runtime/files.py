"""Files that are complete or absent: the one write-to-a-temporary-then-rename helper.

Every output a later command trusts (a run's JSON records, trained models, EWC terms, a
prepared data folder, an exported SavedModel) is written under a temporary name beside its
final place and renamed into place only when complete. A process killed mid-write (SIGKILL,
Ctrl-C, a full disk) leaves at most a hidden `.NAME.tmp-*` file or folder, never a
half-written output that a rerun would take for a finished one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from tfadvser.errors import TfadvserError


@contextlib.contextmanager
def atomic_path(path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write into; rename it onto `path` on success.

    The temporary name ends as `path` does (Keras wants `.keras` or `.weights.h5`). With
    `directory=True` the temporary path is a new empty folder, and an existing folder at
    `path` is replaced (removed just before the rename: a reader sees the old folder, no
    folder for an instant, or the new one). On any exception, KeyboardInterrupt included,
    the temporary is removed and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A hidden prefix, so the name still ends as the final one does (.keras, .weights.h5).
    tmp = path.parent / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}"
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> None:
    """Write UTF-8 text atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path, data: bytes) -> None:
    """Write bytes atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path, value) -> None:
    """Write `value` as indented JSON atomically: a reader sees the old file or the new one."""
    write_text(path, json.dumps(value, indent=2))


def read_json(path) -> dict:
    """Parse a JSON file. Raises TfadvserError naming the file when it is missing or invalid."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfadvserError(f"{path} not found") from None
    except json.JSONDecodeError as exc:
        raise TfadvserError(f"{path}: not valid JSON ({exc})") from None


def save_model(model, path) -> None:
    """`model.save(path)` atomically; `path` ends in `.keras`."""
    with atomic_path(path) as tmp:
        model.save(tmp)
