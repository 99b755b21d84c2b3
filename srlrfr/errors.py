"""What a user-caused failure says: the file, the cause and the fix, never a traceback.

Steps raise ordinary exceptions; srlrfr.cli prints them through
:func:`describe`. The operating system's refusals (disk full, read-only,
permission, file-size limit) become a sentence with what to do, because the
raw ``[Errno 28]`` names neither the output nor the remedy.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

# errno -> (cause, fix); "{dir}" is the folder of the file concerned
_OS_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free space there (df -h {dir}) or point the outputs at a larger disk"),
    errno.EDQUOT: ("your disk quota is exceeded", "free space within your quota (quota -s) or use another disk"),
    errno.EROFS: ("the file system is read-only", "run from a writable copy of the project"),
    errno.EACCES: ("permission denied", "make {dir} readable and writable for you (ls -ld {dir})"),
    errno.EPERM: ("operation not permitted", "make {dir} writable for you (ls -ld {dir})"),
    errno.EFBIG: ("the file exceeds the file-size limit",
                  "raise the limit (ulimit -f) or use a file system that allows larger files"),
    errno.EIO: ("an input/output error (failing disk or network file system)", "check the storage, then rerun"),
    errno.ENOENT: ("it does not exist", "check the path (params.yaml) or rerun the step that makes it"),
}
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
RERUN = "then rerun: finished outputs are kept and nothing half-written is ever used"


class ConfigError(ValueError):
    """A params file that fails validation; the message names the key (srlrfr.config re-exports it)."""


class OutputError(OSError):
    """Writing an output failed; ``filename`` is the output (never its temporary file)."""


def os_cause(exc: OSError) -> tuple[str, str]:
    """(cause, fix) of an OSError, by errno."""
    name = errno.errorcode.get(exc.errno or 0, "")
    cause, fix = _OS_CAUSES.get(exc.errno, (exc.strerror or str(exc), "check the file and the disk"))
    where = Path(exc.filename).parent if exc.filename else Path(".")
    return (f"{cause} ({name})" if name else cause), fix.format(dir=where or ".")


def describe_os_error(exc: OSError) -> str:
    cause, fix = os_cause(exc)
    what = f"cannot write {exc.filename}" if isinstance(exc, OutputError) else (
        f"{exc.filename}" if exc.filename else "a file operation failed")
    if exc.filename2:
        what += f" -> {exc.filename2}"
    tail = f"; {RERUN}" if isinstance(exc, OutputError) or exc.errno in WRITE_ERRNOS else ""
    return f"{what}: {cause}. Fix: {fix}{tail}"


def describe(exc: BaseException) -> str:
    """The one-paragraph message the CLI prints for ``exc``."""
    if isinstance(exc, OSError) and exc.errno is not None:  # srlrfr's own OSErrors carry a sentence instead
        return describe_os_error(exc)
    if isinstance(exc, MemoryError):
        return ("out of memory" + (f": {exc}" if str(exc) else "") + ". Fix: lower the batch size "
                "(align/train/evaluate.batch_size) or run on a machine with more memory")
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) would quote the message
    return str(exc)


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError:
    return OutputError(exc.errno, os.strerror(exc.errno) if exc.errno else str(exc), str(path))
