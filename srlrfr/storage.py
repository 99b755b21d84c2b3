"""Image arrays on disk: plain uint8 ``.npy`` files, written in chunks and read by row.

Aligned crops and every degraded level are ``(N, H, W, 3)`` uint8 ``.npy``
files, one per level, so any tool can ``np.load(path, mmap_mode="r")`` them.
srlrfr itself never holds a whole array: :class:`NpyWriter` streams chunks
after a fixed header, and :class:`NpyArray` reads a chunk or a set of rows with
positional reads. Peak memory is therefore one chunk or one batch, whatever
the dataset size, and no mapped pages are charged to the process either.

Folder layouts (each a DVC directory output):

- ``data/aligned/<dataset>_<geometry>/``: ``images.npy`` (the full-size crops,
  stored once) and ``faces.csv`` (image_id, status, landmark_ok and the five
  source points used, one row per image in ``images.npy`` order);
- ``data/degraded/<dataset>_<geometry>/``: ``x<f>.npy`` per downsampling factor
  (the plain downsample), ``x<f>_lq.npy`` per input factor when the degradation
  model is not plain (the degraded level: probes, SR inputs), and ``levels.json``
  (factors, kernel, image count, the degradation and each input level's file).
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .atomic import atomic_path, write_json
from .damaged import remedy

IMAGES = "images.npy"
FACES = "faces.csv"
LEVELS = "levels.json"
CHUNK = 256  # images per read/write chunk: ~8 MB at 112x96


class StorageError(ValueError):
    """An image array on disk is missing, truncated or not what the step expects."""


def level_name(factor: int, degraded: bool = False) -> str:
    return f"x{int(factor)}{'_lq' if degraded else ''}.npy"


class NpyWriter:
    """Write an array of known shape to ``.npy``, in order (``write``) or at given rows (``write_at``).

    Use :func:`write_npy` (atomic). Closing checks that every row was written.
    """

    def __init__(self, fh, shape: tuple[int, ...], dtype=np.uint8):
        self.fh, self.shape, self.dtype = fh, tuple(int(s) for s in shape), np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        if _fits_v1(header):
            np.lib.format.write_array_header_1_0(fh, header)
        else:
            np.lib.format.write_array_header_2_0(fh, header)
        self.offset = fh.tell()
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.written = np.zeros(self.shape[0], dtype=bool)
        self.cursor = 0

    def write_at(self, start: int, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if chunk.dtype != self.dtype or chunk.shape[1:] != self.shape[1:]:
            raise StorageError(f"chunk {chunk.dtype} {chunk.shape} does not fit an array "
                               f"{self.dtype} {self.shape}")
        if start < 0 or start + len(chunk) > self.shape[0]:
            raise StorageError(f"rows {start}..{start + len(chunk)} outside the {self.shape[0]} declared")
        self.fh.seek(self.offset + start * self.row_bytes)
        self.fh.write(np.ascontiguousarray(chunk).tobytes())
        self.written[start:start + len(chunk)] = True

    def write(self, chunk: np.ndarray) -> None:
        self.write_at(self.cursor, chunk)
        self.cursor += len(chunk)

    def close(self) -> None:
        missing = int((~self.written).sum())
        if missing:
            raise StorageError(f"{self.shape[0] - missing} rows written, {self.shape[0]} declared")


def _fits_v1(header: dict) -> bool:
    return len(repr(header)) < 65000


@contextlib.contextmanager
def write_npy(path: str | os.PathLike, shape: tuple[int, ...], dtype=np.uint8) -> Iterator[NpyWriter]:
    """``with write_npy(path, shape) as w: w.write(chunk)...``: all rows, or no file at all."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = NpyWriter(fh, shape, dtype)
        yield writer
        writer.close()
        fh.flush()
        os.fsync(fh.fileno())


class NpyArray:
    """Read-only view of a C-order ``.npy`` file by positional reads (no whole-file load)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StorageError(f"{self.path} does not exist (run the step that writes it)")
        with open(self.path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy format version {version}")
                shape, fortran, dtype = read_header(fh)
            except ValueError as exc:
                raise StorageError(f"{self.path} is DAMAGED (not a .npy array file: {exc}). "
                                   f"Fix: {remedy(self.path)}") from None
            self.offset = fh.tell()
        if fortran or dtype.hasobject:
            raise StorageError(f"{self.path}: expected a C-order numeric array")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self.offset + self.row_bytes * self.shape[0]
        size = self.path.stat().st_size
        if size != expected:
            raise StorageError(f"{self.path} is DAMAGED (truncated: {size} bytes, header promises "
                               f"{expected}, shape {self.shape}). Fix: {remedy(self.path)}")

    def __len__(self) -> int:
        return self.shape[0]

    def _pread(self, fd: int, start: int, count: int) -> np.ndarray:
        nbytes = count * self.row_bytes
        buf = bytearray(nbytes)
        view, done = memoryview(buf), 0
        while done < nbytes:
            got = os.preadv(fd, [view[done:]], self.offset + start * self.row_bytes + done)
            if got == 0:
                raise StorageError(f"{self.path}: unexpected end of file")
            done += got
        return np.frombuffer(buf, dtype=self.dtype).reshape((count, *self.shape[1:]))

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``[start, stop)`` as a new array."""
        stop = len(self) if stop is None else min(stop, len(self))
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return self._pread(fd, start, max(stop - start, 0))
        finally:
            os.close(fd)

    def take(self, indices) -> np.ndarray:
        """Rows at ``indices`` (any order, repeats allowed), reading each distinct run once."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"{self.path}: row index out of range [0, {len(self)})")
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        if not indices.size:
            return out
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        # consecutive runs of rows are read with one call each
        breaks = np.flatnonzero(np.diff(sorted_idx) > 1) + 1
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for run in np.split(np.arange(len(sorted_idx)), breaks):
                lo, hi = int(sorted_idx[run[0]]), int(sorted_idx[run[-1]])
                block = self._pread(fd, lo, hi - lo + 1)
                out[order[run]] = block[sorted_idx[run] - lo]
        finally:
            os.close(fd)
        return out

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """(start, rows) over the whole array, ``size`` rows at a time."""
        for start in range(0, len(self), size):
            yield start, self.read(start, start + size)


def write_levels_manifest(folder: str | os.PathLike, *, factors, kernel: str, n: int, **extra) -> None:
    write_json(Path(folder) / LEVELS, {"factors": sorted(int(f) for f in factors), "kernel": kernel,
                                       "n": int(n), **extra})


def read_levels_manifest(folder: str | os.PathLike) -> dict:
    path = Path(folder) / LEVELS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StorageError(f"{path} does not exist: {folder} is not a degraded-levels folder") from None


def open_level(aligned_dir: str | os.PathLike, degraded_dir: str | os.PathLike | None,
               factor: int, clean: bool = False) -> NpyArray:
    """The crops at 1/``factor``: the degraded level (probes, SR inputs), or with ``clean`` the plain
    downsample (pixel targets); the same file under a plain model. Factor 1 is the aligned crops."""
    if factor == 1:
        return NpyArray(Path(aligned_dir) / IMAGES)
    if degraded_dir is None:
        raise StorageError(f"level x{factor} needs the degraded folder")
    manifest = read_levels_manifest(degraded_dir)
    if factor not in manifest["factors"]:
        raise StorageError(f"{degraded_dir} has no x{factor} level (has x{', x'.join(map(str, manifest['factors']))})")
    if clean:
        return NpyArray(Path(degraded_dir) / level_name(factor))
    inputs = manifest.get("inputs", {str(f): level_name(f) for f in manifest["factors"]})  # older folders: plain
    if str(factor) not in inputs:
        raise StorageError(f"{degraded_dir} has no degraded x{factor} level (only the clean one; degraded: "
                           f"x{', x'.join(sorted(inputs, key=int))}); rerun its degrade step")
    return NpyArray(Path(degraded_dir) / inputs[str(factor)])


class AlignedSet:
    """An aligned folder: the crops (read by row) and the per-image face table."""

    def __init__(self, folder: str | os.PathLike):
        # deferred: loads pandas
        import pandas as pd
        self.folder = Path(folder)
        self.images = NpyArray(self.folder / IMAGES)
        faces = self.folder / FACES
        if not faces.is_file():
            raise StorageError(f"{faces} does not exist: {self.folder} is not an aligned folder")
        self.faces = pd.read_csv(faces, keep_default_na=False, na_values=[""])
        if len(self.faces) != len(self.images):
            raise StorageError(f"{faces} lists {len(self.faces)} images, {self.images.path} holds {len(self.images)}")
        self.ids = self.faces["image_id"].astype(str).to_numpy()
        self.ok = self.faces["landmark_ok"].astype(bool).to_numpy()
        self.status = self.faces["status"].fillna("ok").astype(str).to_numpy() if "status" in self.faces \
            else np.full(len(self.ids), "ok", dtype=object)
        self._pos = {k: i for i, k in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def damaged(self) -> np.ndarray:
        """Rows whose source image is corrupt or unreadable (black placeholders: never scored or trained on)."""
        # deferred: loads pandas
        from .face.landmarks_io import DAMAGED
        return np.isin(self.status, DAMAGED)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def rows(self, ids) -> np.ndarray:
        try:
            return np.array([self._pos[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"image {exc.args[0]!r} is not among the aligned images of {self.folder}") from None
