"""GPU leases: an exclusive ``flock`` per GPU, held by a process until it exits.

The kernel drops the locks of a process however it ends (``kill -9`` included),
so a dead job never keeps a GPU. No torch here: a GPU is only a name (srlrfr.device
names them by UUID). Lock folder: ``$SRLRFR_GPU_LOCK_DIR``, default
``<tmp>/srlrfr-gpu-locks-<uid>``: local to the machine, never on a shared filesystem.

The default folder is the user's own (0700): a folder in /tmp that everyone
writes could be planted by another user as a link (srlrfr would then chmod or
write through it). So it must be a real folder, not a link, owned by this user;
a folder given in ``$SRLRFR_GPU_LOCK_DIR`` that several users share must be
sticky (like /tmp). Leases therefore keep one user's jobs apart; to keep several
users' jobs apart, point them all at one sticky folder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "SRLRFR_GPU_LOCK_DIR"
_HELD: dict[str, int] = {}  # GPU key -> fd of its lock, for the life of the process


class LeaseFolderError(RuntimeError):
    """The lease folder is a link, not a folder, or another user's folder that is not sticky."""


def lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"srlrfr-gpu-locks-{os.getuid()}")


def _refuse(directory: Path, why: str) -> LeaseFolderError:
    return LeaseFolderError(f"GPU lease folder {directory} {why}; srlrfr does not lease GPUs through it. "
                            f"Fix: remove it if it is not yours (ls -ld {directory}), or set {LOCK_DIR_ENV} "
                            f"to a folder of your own")


def _checked(directory: Path) -> Path:
    """``directory``, made 0700 if missing; checked with lstat, never followed or chmod-ed if it is a link."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    st = os.lstat(directory)
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(directory, f"is a symbolic link (to {os.readlink(directory)})")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(directory, "is not a folder")
    if st.st_uid != os.getuid() and not st.st_mode & stat.S_ISVTX:
        raise _refuse(directory, f"belongs to user id {st.st_uid} and is not sticky (others could swap its files)")
    return directory


def _lock_path(key: str, directory: Path) -> Path:
    return _checked(directory) / f"{key.replace('/', '_')}.lock"


def _open_lock(path: Path) -> int:
    try:  # O_NOFOLLOW: a planted link would have us truncate its target
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except PermissionError:  # another user's file: flock needs only read access
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path.parent, f"holds a symbolic link {path.name}") from None
        raise


def try_lease(key: str, directory: Path | None = None) -> bool:
    """Take the lease of GPU ``key`` if it is free (or already ours); never waits."""
    if key in _HELD:
        return True
    path = _lock_path(key, directory or lock_dir())
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    with contextlib.suppress(OSError):  # who holds it, for the message of a job that waits
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
    _HELD[key] = fd
    return True


def holder(key: str, directory: Path | None = None) -> str:
    try:
        return (directory or lock_dir()).joinpath(f"{key.replace('/', '_')}.lock").read_text().strip() or "?"
    except OSError:
        return "?"


def lease(keys: list[str], directory: Path | None = None, wait: float | None = None,
          poll: float = 0.5) -> int | None:
    """Index in ``keys`` of a GPU this process now holds: one it already holds, else the first free.

    Waits for one to be freed (``wait`` seconds, None = no limit); None if the wait ran out.
    """
    for i, key in enumerate(keys):
        if key in _HELD:
            return i
    start, told = time.monotonic(), 0.0
    while True:
        for i, key in enumerate(keys):
            if try_lease(key, directory):
                return i
        waited = time.monotonic() - start
        if wait is not None and waited >= wait:
            return None
        if waited >= told:
            log.warning("all %d visible GPU(s) are leased by other srlrfr jobs (%s); waiting for one to be freed",
                        len(keys), "; ".join(holder(k, directory) for k in keys))
            told = waited + 300
        time.sleep(poll)


def release_all() -> None:
    """Give back every lease (tests; a process gives its leases back by exiting)."""
    while _HELD:
        os.close(_HELD.popitem()[1])
