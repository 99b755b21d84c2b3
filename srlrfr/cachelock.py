"""One writer at a time per file or folder of a shared cache (downloads, unpacked archives).

Two runs sharing ``data.cache`` would otherwise unpack the same archive at
once, and the second would remove the first's half-filled folder. The writer
holds an exclusive ``flock`` on ``<folder>/.srlrfr-locks/<name>.lock``; a
second run waits, then finds the work done and reuses it. The kernel drops the
lock of a process however it ends (``kill -9`` included), so a dead run never
blocks the next. The locks live in their own hidden folder so that no glob of
the cached names (``name.7z.*`` of a multi-part archive) ever matches them.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

LOCKS = ".srlrfr-locks"


def lock_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.parent / LOCKS / f"{path.name}.lock"


def _open(lock: Path) -> int:
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a link planted in a shared cache would have us truncate its target
        try:
            return os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except PermissionError:  # another user's lock (a group cache): flock needs only read access
            return os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermissionError(f"{lock} is a symbolic link, not srlrfr's lock; remove it "
                                  f"(rm {lock}) and rerun") from None
        raise


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "?"
    return "?"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, doing: str = "writing") -> Iterator[None]:
    """Hold the lock of ``path`` for the block; wait (saying for whom) while another process holds it."""
    path = Path(path)
    fd = _open(lock_file(path))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s: another run (%s) is %s it; waiting for it to finish", path, _holder(fd), doing)
            fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):  # who holds it, for the message of a run that waits
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def proc_stat(pid: str | int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...: field 3 is item 0),
    None when the process is gone or there is no /proc. The name is in parentheses and may hold
    spaces and parentheses itself, so the fields start after the last ')'."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields or None


def process_runs(pid: str | int) -> bool:
    """``pid`` is a process that runs (a killed one not yet reaped, a zombie, has dropped its locks: dead)."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")

