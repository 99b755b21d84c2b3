"""Atomic output writing: a step's output either exists complete or not at all.

Everything is written to a temporary sibling and renamed into place, so a
killed run never leaves a half-written file that a later run would trust.
The temporary file gets the mode an ordinary ``open`` would give (the user's
umask), so results on a shared file system stay readable by the group. Its
name carries the writer's host and pid, so the next writer of the same output
removes what a killed one left behind (never a live writer's).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .cachelock import process_runs
from .errors import WRITE_ERRNOS, OutputError, output_error
from .faults import pause_point


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting and restoring
    os.umask(mask)
    return mask


def _write_failure(exc: BaseException, path: Path, tmp: Path | None) -> OutputError | None:
    """The OS refusing to write ``path`` (disk full, read-only, ...), named by the output, not its temp file.

    A permission error about another file (an input read inside the block)
    keeps its own name.
    """
    if not isinstance(exc, OSError) or isinstance(exc, OutputError) or exc.errno is None:
        return None
    ours = exc.filename is None or tmp is None or str(exc.filename).startswith(str(tmp))
    if exc.errno in WRITE_ERRNOS or (ours and exc.errno in (errno.EACCES, errno.EPERM)):
        return output_error(exc, path)
    return None


def _temp_prefix(path: Path, pid: int | None = None) -> str:
    """``.<name>.<host>-<pid>.``: whose temp file it is, so a later run can tell a dead writer's litter."""
    return f".{path.name}.{socket.gethostname()}-{os.getpid() if pid is None else pid}."


def _remove_stale_temps(path: Path) -> None:
    """Remove temp files of ``path`` left by writers on this host that were killed (their pid is gone).

    A live writer's temp file, or one from another host, is never touched.
    """
    head = f".{path.name}.{socket.gethostname()}-"
    for stale in path.parent.glob(glob.escape(head) + "*.tmp"):
        pid = stale.name[len(head):].split(".", 1)[0]
        if pid.isdigit() and not process_runs(pid) and Path("/proc/self").exists():  # a zombie is dead too
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


_state = threading.local()  # staged outputs of an all_or_nothing block; temp folders being filled


def _commit(tmp: Path, path: Path, is_dir: bool) -> None:
    pause_point(f"replace:{path.name}")
    if is_dir and path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def _discard(tmp: Path) -> None:
    if tmp.is_dir():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """The outputs a step writes (atomic_path) inside the block appear together at its end, or none does.

    So a step that fails on its third output (disk full) leaves neither its
    first two nor a mix of new and earlier outputs.
    """
    if getattr(_state, "staged", None) is not None:  # nested: the outermost block commits
        yield
        return
    _state.staged = []
    try:
        yield
        staged, _state.staged = _state.staged, None
        for i, (tmp, path, is_dir) in enumerate(staged):
            try:
                _commit(tmp, path, is_dir)
            except BaseException:
                for rest, _, _ in staged[i:]:
                    _discard(rest)
                raise
    except BaseException:
        for tmp, _, _ in _state.staged or ():
            _discard(tmp)
        raise
    finally:
        _state.staged = None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success
    (inside :func:`all_or_nothing`, at the end of that block).

    Temporary files of earlier writers of ``path`` that were killed are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700
        else:
            fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes it 0600
            os.close(fd)
            tmp = Path(name)
    except OSError as exc:
        raise (_write_failure(exc, path, None) or exc) from None
    filling = getattr(_state, "filling", [])
    staged = getattr(_state, "staged", None)
    try:
        _state.filling = filling + [tmp] if is_dir else filling
        yield tmp
        _state.filling = filling
        if staged is not None and not any(d in path.parents for d in filling):
            staged.append((tmp, path, is_dir))  # renamed when the all_or_nothing block ends
        else:  # a file inside a temp folder being filled is part of that folder: in place now
            _commit(tmp, path, is_dir)
    except BaseException as exc:
        _state.filling = filling
        _discard(tmp)
        failure = _write_failure(exc, path, tmp)
        if failure is not None:
            raise failure from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def write_csv(path: str | os.PathLike, frame) -> None:
    """Write a pandas DataFrame atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically and byte-reproducibly.

    Saving to a path names the zip's top folder after the (random) temp file,
    so equal tensors would give different bytes; through a file object torch
    uses a fixed name.
    """
    # deferred: loads torch
    import torch
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        try:
            torch.save(obj, fh)
        except RuntimeError as exc:
            raise _torch_write_error(exc) from None


def _torch_write_error(exc: RuntimeError) -> BaseException:
    """torch's zip writer reports a failed write as "unexpected pos N vs M": find the OSError behind it."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            return cause
        cause = cause.__cause__ or cause.__context__
    if "unexpected pos" in str(exc) or "failed writing" in str(exc):
        return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (torch: {str(exc).strip()[:80]})")
    return exc
