"""The multi-scale training data: which levels exist and how a batch is gathered.

Each step draws one k in SCALE_EXPONENTS for the whole batch: input = the
1/2^k face, pixel target = the 1/2^(k-2) face (x4), identity target = the full
face. Inputs are the degraded levels (``degrade.model``), targets the plain
downsamples: the network learns to undo the degradation, not to reproduce it.
The levels are built once (the ``degrade`` step) and read by row, so a
training job holds one batch, never the dataset.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..storage import FACES, AlignedSet, open_level, read_levels_manifest

SCALE_EXPONENTS = (2, 3, 4)
SR_SCALE = 4  # input 1/2^k -> target 1/2^(k-2)
# Every level a step can read: 1 (identity target) and each input and target.
PYRAMID_FACTORS = tuple(sorted({1} | {2 ** k for k in SCALE_EXPONENTS} | {2 ** k // SR_SCALE for k in SCALE_EXPONENTS}))
INPUT_FACTORS = tuple(2 ** k for k in SCALE_EXPONENTS)  # the levels an SRNet sees as input


class InMemory:
    """An in-memory array with the row-reading interface of :class:`srlrfr.storage.NpyArray`."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self) -> int:
        return len(self.array)

    def take(self, indices) -> np.ndarray:
        return self.array[np.asarray(indices)]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.array[start:stop]


class PyramidData:
    """Training crops at every level of PYRAMID_FACTORS, gathered by row.

    ``levels`` maps factor -> uint8 (N, H/f, W/f, 3) rows (NpyArray or InMemory):
    the plain downsamples. ``inputs`` maps each of INPUT_FACTORS to its degraded
    rows (default: the plain ones). ``degradation`` describes what made them.
    ``usable``: the rows training may draw (default all); crops of images
    without a face or unreadable are left out (``open`` reads faces.csv).
    """

    def __init__(self, levels: dict, inputs: dict | None = None, degradation: dict | None = None, usable=None):
        missing = [f for f in PYRAMID_FACTORS if f not in levels]
        if missing:
            raise ValueError(f"pyramid lacks level {missing[0]} (needs {PYRAMID_FACTORS}); has {sorted(levels)}")
        self.levels = {f: levels[f] for f in PYRAMID_FACTORS}
        hr = self.levels[1]
        if hr.dtype != np.uint8 or len(hr.shape) != 4 or hr.shape[-1] != 3:
            raise ValueError("training crops must be a uint8 array (N, H, W, 3) of aligned RGB crops, got "
                             f"{hr.dtype} {hr.shape}")
        n, h, w, _ = hr.shape
        if n == 0 or h % 16 or w % 16:
            raise ValueError(f"need >= 1 crop with H and W divisible by 16 (for the 1/16 level), got {hr.shape}")
        for f, lv in self.levels.items():
            if lv.dtype != np.uint8 or tuple(lv.shape) != (n, h // f, w // f, 3):
                raise ValueError(f"pyramid level {f}: expected uint8 {(n, h // f, w // f, 3)}, "
                                 f"got {lv.dtype} {lv.shape}")
        inputs = inputs or {}
        self.inputs = {f: inputs.get(f, self.levels[f]) for f in INPUT_FACTORS}
        for f, lv in self.inputs.items():
            if lv.dtype != np.uint8 or tuple(lv.shape) != (n, h // f, w // f, 3):
                raise ValueError(f"degraded input level {f}: expected uint8 {(n, h // f, w // f, 3)}, "
                                 f"got {lv.dtype} {lv.shape}")
        self.degradation = degradation
        self.usable = np.arange(n) if usable is None else np.unique(np.asarray(usable, dtype=np.int64))
        if len(self.usable) == 0:
            raise ValueError(f"none of the {n} training crops is usable (every image lacks a face or is unreadable)")
        if self.usable[0] < 0 or self.usable[-1] >= n:
            raise ValueError(f"usable rows must lie in [0, {n}), got {self.usable[0]}..{self.usable[-1]}")

    @classmethod
    def from_images(cls, hr: np.ndarray, kernel: str, model: dict | None = None, seed: int = 0,
                    usable=None) -> "PyramidData":
        """Build every level in memory from uint8 crops (tests, small runs), as the degrade step does."""
        if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8 or hr.ndim != 4 or hr.shape[-1] != 3:
            raise ValueError("hr_images must be a uint8 array (N, H, W, 3) of aligned RGB crops, got "
                             f"{getattr(hr, 'dtype', type(hr))} {getattr(hr, 'shape', '')}")
        if len(hr) == 0 or hr.shape[1] % 16 or hr.shape[2] % 16:
            raise ValueError(f"need >= 1 crop with H and W divisible by 16 (for the 1/16 level), got {hr.shape}")
        # deferred: loads cv2
        from ..degradation import Degradation
        deg = Degradation(model, kernel, seed=seed)
        clean, degraded = deg.levels(hr, PYRAMID_FACTORS[1:], INPUT_FACTORS)
        return cls({1: InMemory(hr), **{f: InMemory(a) for f, a in clean.items()}},
                   {f: InMemory(a) for f, a in degraded.items()}, deg.describe(), usable)

    @classmethod
    def open(cls, aligned_dir: str | Path, degraded_dir: str | Path) -> "PyramidData":
        """The levels written by the align and degrade steps, read by row from disk.

        usable = landmark_ok of faces.csv: crops of images without a face, and the
        black placeholders of corrupt or unreadable ones, are never trained on.
        Bare crops (no faces.csv) are all usable.
        """
        usable = np.flatnonzero(AlignedSet(aligned_dir).ok) if (Path(aligned_dir) / FACES).is_file() else None
        return cls({f: open_level(aligned_dir, degraded_dir, f, clean=True) for f in PYRAMID_FACTORS},
                   {f: open_level(aligned_dir, degraded_dir, f) for f in INPUT_FACTORS},
                   read_levels_manifest(degraded_dir).get("degradation"), usable)

    def __len__(self) -> int:
        return len(self.levels[1])

    @property
    def dropped(self) -> int:
        """Crops training never draws (no face, unreadable)."""
        return len(self) - len(self.usable)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.levels[1].shape[1:3])

    def gather(self, factor: int, idx: np.ndarray) -> np.ndarray:
        """Plain rows (pixel and identity targets)."""
        return self.levels[factor].take(idx)

    def gather_input(self, factor: int, idx: np.ndarray) -> np.ndarray:
        """Degraded rows (SR inputs)."""
        return self.inputs[factor].take(idx)

    def fingerprint(self, max_samples: int = 1024) -> str:
        """sha256 over the shape and an evenly strided subset of crops (cheap on 200k crops)."""
        hr = self.levels[1]
        h = hashlib.sha256(repr(tuple(hr.shape)).encode())
        rows = np.linspace(0, len(hr) - 1, num=min(len(hr), max_samples)).astype(int)
        for img in hr.take(rows):
            h.update(np.ascontiguousarray(img).tobytes())
        if self.dropped:  # which rows are drawn is part of the data
            h.update(self.usable.tobytes())
        return h.hexdigest()


class BatchSampler:
    """Image indices for step s: positions [s*B, (s+1)*B) of a stream of epochs,
    each epoch a permutation seeded by (seed, epoch). Stateless, so resuming
    needs only the step."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 4:  # a batch spans at most two epochs; keep a few
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def indices(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, offsets = np.divmod(pos, self.n)
        return np.array([self._perm(int(e))[o] for e, o in zip(epochs, offsets)])
