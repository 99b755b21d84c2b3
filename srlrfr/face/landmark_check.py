"""Do supplied landmarks belong to these image files? Compare with MTCNN on a sample.

Published landmarks are pixels of one particular copy of a dataset. The
authors' ``LFW.csv`` is for the original ``lfw.tgz`` images; on the funneled
or deep-funneled LFW (other crops of the same photos) its points are several
pixels off, and the alignment would be silently wrong.

The check detects the sample's faces again and compares point by point. A
common offset between two MTCNN ports (their coordinate conventions differ by
about a pixel) is removed first: the median displacement over all sampled
points. What remains is each image's own misfit, as a fraction of its eye
distance so that large and small faces count alike; the median over the
sample must stay under ``MAX_RESIDUAL``. Two runs of MTCNN ports on the same
image agree to about 1.5 px on LFW's ~43 px eye distance (0.035); a wrong
LFW variant is off by about 5 px (0.11).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

SAMPLE = 20
MAX_RESIDUAL = 0.06  # of the eye distance: 2.5 px for LFW's ~43 px
MIN_CHECKED = 5      # fewer re-detected faces than this: no verdict
ON_MISMATCH = ("fail", "warn", "off")


class LandmarkMismatch(ValueError):
    """Supplied landmarks disagree with the faces in the image files."""


@dataclass(frozen=True)
class Agreement:
    checked: int                 # sampled images with a re-detected face
    sampled: int
    offset: tuple[float, float]  # median (file - detected), px
    residual: float              # median per-image misfit after the offset, in eye distances
    residual_px: float           # the same in pixels

    @property
    def conclusive(self) -> bool:
        return self.checked >= MIN_CHECKED

    @property
    def agrees(self) -> bool:
        return not self.conclusive or self.residual <= MAX_RESIDUAL

    def describe(self) -> str:
        return (f"{self.checked}/{self.sampled} sampled faces re-detected; common offset "
                f"({self.offset[0]:+.2f}, {self.offset[1]:+.2f}) px; median misfit after it "
                f"{self.residual_px:.2f} px = {self.residual:.3f} eye distances (limit {MAX_RESIDUAL})")


def sample_rows(n: int, k: int = SAMPLE) -> np.ndarray:
    """``k`` evenly spaced row numbers of ``n`` (the same on every run)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(int)) if n else np.array([], int)


def compare_with_detection(paths: Sequence[str], points: np.ndarray, *, device: str = "cpu",
                           min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7)) -> Agreement:
    """Re-detect the faces of ``paths`` and measure how far ``points`` (N, 5, 2) are from them."""
    from .detect import ImageReadError, choose_face, read_rgb
    from .mtcnn import MTCNN
    images, kept = [], []
    for k, path in enumerate(paths):
        try:
            images.append(read_rgb(path))
            kept.append(k)
        except ImageReadError as err:
            log.warning("landmark check: %s", err)
    detections = MTCNN(device=device, min_face_size=min_face_size, thresholds=tuple(thresholds)).detect(images) \
        if images else []
    given, found = [], []
    for k, img, dets in zip(kept, images, detections):
        face = choose_face(dets, img.shape)
        if face is not None:
            given.append(points[k])
            found.append(dets.landmarks[face].astype(np.float64))
    if not found:
        return Agreement(0, len(paths), (float("nan"),) * 2, float("nan"), float("nan"))
    given, found = np.asarray(given, np.float64), np.asarray(found)
    diff = given - found
    offset = np.median(diff.reshape(-1, 2), axis=0)
    misfit = np.linalg.norm(diff - offset, axis=2).mean(axis=1)            # px, per image
    eyes = np.linalg.norm(found[:, 1] - found[:, 0], axis=1).clip(1.0)     # px, per image
    return Agreement(len(found), len(paths), (float(offset[0]), float(offset[1])),
                     float(np.median(misfit / eyes)), float(np.median(misfit)))
