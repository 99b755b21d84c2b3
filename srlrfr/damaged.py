"""Damaged files: every .npz/.npy read by srlrfr names the file and the step that rewrites it.

numpy's own errors on a truncated or garbled file (``BadZipFile: File is not a
zip file``) name neither the file nor the fix. Here they become a
:class:`DamagedFileError`: the path, what is wrong, and "delete it and rerun
step X", X being the Snakemake rule that writes that path (``writing_step``).
"""
from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

# (top folder, sub folder) of an output -> the rule that writes it (workflow/rules/*.smk)
STEPS = {("data", "index"): "ingest", ("data", "landmarks"): "landmarks", ("data", "aligned"): "align",
         ("data", "degraded"): "degrade", ("results", "features"): "features", ("results", "eval"): "evaluate",
         ("results", "matrix"): "matrix", ("results", "figures"): "report", ("results", "plots"): "report",
         ("models", "fnets"): "fnet_weights", ("models", "authors"): "import_authors", ("models", "srnets"): "train"}


class DamagedFileError(ValueError):
    """A file srlrfr wrote or downloaded is truncated or garbled: it has to be deleted and made again."""


def writing_step(path: str | os.PathLike) -> str | None:
    """The rule that writes ``path`` (its last ``data|results|models/<folder>`` part), or None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2, -1, -1):
        step = STEPS.get((parts[i], parts[i + 1]))
        if step:
            return step
    return None


def remedy(path: str | os.PathLike, step: str | None = None) -> str:
    """What to do with a damaged ``path``: delete it and rerun its step, or fetch it again."""
    step = step or writing_step(path)
    if step:
        return f"delete it and rerun step {step} (Snakemake remakes the missing file)"
    return "delete it and download or copy it again (compare its size or checksum with the original)"


def damaged(path: str | os.PathLike, reason: str, step: str | None = None) -> DamagedFileError:
    return DamagedFileError(f"{path} is DAMAGED (corrupt or truncated: {reason}); it cannot be read. "
                            f"Fix: {remedy(path, step)}")


def _reason(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)  # str() would quote it
    text = str(text).splitlines()[0].split(". ")[0] if text else ""  # not numpy's "load it unsafely" advice
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_damage(exc: BaseException) -> bool:
    # an OSError with an errno (permission, I/O error) is the disk's, not the file's: reported as such
    if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
        return exc.errno is None
    return isinstance(exc, (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError))


@contextlib.contextmanager
def _named_damage(path: Path, step: str | None):
    """Reading ``path``: a sign of damage becomes a DAMAGED error naming it (a missing file stays one)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except Exception as exc:
        if _is_damage(exc):
            raise damaged(path, _reason(exc), step) from None
        raise


def load_npz(path: str | os.PathLike, keys: tuple[str, ...] | None = None,
             step: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (``keys``, default all), read now so that a damaged member fails here."""
    path = Path(path)
    with _named_damage(path, step), np.load(path, allow_pickle=False) as z:
        missing = [k for k in keys or () if k not in z.files]
        if missing:
            raise KeyError(f"no array {', '.join(missing)} (holds {', '.join(z.files) or 'none'})")
        return {k: z[k] for k in keys or z.files}


def load_npy(path: str | os.PathLike, mmap_mode: str | None = None, step: str | None = None) -> np.ndarray:
    """``np.load`` of an ``.npy`` (no pickles), a damaged file reported by name."""
    path = Path(path)
    with _named_damage(path, step):
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
