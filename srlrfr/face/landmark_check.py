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

The common offset is bounded too (``max(MAX_OFFSET_PX, MAX_OFFSET_EYES x the
eye distance)``): points that all sit 10 px away fit the shape, not the files
(a shifted, padded or re-cropped copy; 50 px usually means a resized one). A
mismatch names its likely cause (:meth:`Agreement.cause`): 'resized' when the
given points spread wider or narrower than the detected ones, 'shifted' when
only the common offset is off, else 'another variant of the dataset'.
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
MAX_OFFSET_PX = 3.0  # common offset allowed between MTCNN ports: about a pixel, with room ...
MAX_OFFSET_EYES = 0.1  # ... or this fraction of the eye distance for large faces (4.3 px on LFW)
MAX_SCALE_OFF = 0.1  # the given points' spread / the detected ones' beyond 1 +- this: another image size
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
    eye_px: float = float("nan")  # median detected eye distance, px
    scale: float = 1.0           # median per-image spread of the given points / the detected ones

    @property
    def conclusive(self) -> bool:
        return self.checked >= MIN_CHECKED

    @property
    def max_offset(self) -> float:
        return max(MAX_OFFSET_PX, MAX_OFFSET_EYES * self.eye_px) if np.isfinite(self.eye_px) else MAX_OFFSET_PX

    @property
    def offset_ok(self) -> bool:
        return bool(np.hypot(*self.offset) <= self.max_offset)

    @property
    def agrees(self) -> bool:
        return not self.conclusive or (self.residual <= MAX_RESIDUAL and self.offset_ok)

    def describe(self) -> str:
        return (f"{self.checked}/{self.sampled} sampled faces re-detected; common offset "
                f"({self.offset[0]:+.2f}, {self.offset[1]:+.2f}) px (limit {self.max_offset:.1f} px); median "
                f"misfit after it {self.residual_px:.2f} px = {self.residual:.3f} eye distances "
                f"(limit {MAX_RESIDUAL}); spread of the given points {self.scale:.3f}x the detected ones")

    def cause(self) -> str:
        """The likely reason of a disagreement, in words."""
        if abs(self.scale - 1) > MAX_SCALE_OFF:
            return (f"resized: the given points spread {self.scale:.2f}x as wide as the faces on disk, so they "
                    f"were made for a copy of these images at another size (or a scaled crop)")
        if not self.offset_ok and self.residual <= MAX_RESIDUAL:
            return (f"shifted: every point is off by about ({self.offset[0]:+.1f}, {self.offset[1]:+.1f}) px "
                    f"while the faces' shape fits, so these images are shifted (padded or re-cropped) "
                    f"against the copy the points were made for")
        return ("another variant of the dataset: the points fit neither after a common shift nor after a "
                "scale (each face moved on its own, as in funneled or deep-funneled LFW, or aligned crops)")


# ---- is a row a face's landmarks at all? (every row, from any source)

MIN_EYE_PX = 3.0  # closer eyes cannot be aligned; an all-zero or collapsed row has 0
EDGE = 0.1        # points may leave the image by this fraction of its side (a face cut by the frame)
BAD_LANDMARKS = "bad_landmarks"  # the status of a row that fails (srlrfr.face.landmarks_io.STATUSES)


def _face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of each point, (N, 5) each: along the eyes' axis (left eye -> right eye) and across it
    (image-down when the face is upright), from the eyes' midpoint, so order checks allow head roll."""
    eye = points[:, 1] - points[:, 0]
    along = eye / np.linalg.norm(eye, axis=1, keepdims=True).clip(1e-9)
    across = np.stack([-along[:, 1], along[:, 0]], axis=1)
    rel = points - (points[:, 0] + points[:, 1])[:, None] / 2
    return np.einsum("nkd,nd->nk", rel, along), np.einsum("nkd,nd->nk", rel, across)


def implausible(points: np.ndarray, sizes: np.ndarray | None = None) -> list[str]:
    """Per row of ``points`` (N, 5, 2: left eye, right eye, nose, left and right mouth corner in the
    image's own left/right), why it cannot be a face's landmarks, or '' when it can.

    ``sizes`` (N, 2): the image's width and height; NaN (or None) where unknown, then bounds are
    not checked. Checks: finite; eye distance in [MIN_EYE_PX, width]; every point inside the image
    up to EDGE of its side; left eye left of the right one, mouth corners below the eyes and in
    the same order, nose between the eyes' line and the mouth's.
    """
    points = np.asarray(points, np.float64).reshape(-1, 5, 2)
    sizes = np.full((len(points), 2), np.nan) if sizes is None else np.asarray(sizes, np.float64).reshape(-1, 2)
    finite = np.isfinite(points).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], points, 0.0)
    eyes = np.linalg.norm(safe[:, 1] - safe[:, 0], axis=1)
    margin = EDGE * sizes
    low, high = -margin, sizes - 1 + margin
    outside = ((safe < low[:, None]) | (safe > high[:, None])).any(axis=(1, 2))  # NaN sizes compare False
    u, v = _face_frame(safe)
    mouth = v[:, 3:5].max(axis=1)
    tests = [
        (~finite, "coordinates not finite"),
        (finite & (eyes < MIN_EYE_PX), "eye distance {eye:.2f} px, under " + f"{MIN_EYE_PX:g} px"),
        (finite & (eyes > sizes[:, 0]), "eye distance {eye:.2f} px, wider than the image ({w:g} px)"),
        (finite & outside, "a point lies outside the {w:g}x{h:g} image"),
        (finite & (safe[:, 0, 0] >= safe[:, 1, 0]), "left eye not left of the right eye"),
        (finite & ((v[:, 3] <= 0) | (v[:, 4] <= 0)), "mouth corners not below the eyes"),
        (finite & (u[:, 3] >= u[:, 4]), "left mouth corner not left of the right one"),
        (finite & ((v[:, 2] <= 0) | (v[:, 2] >= mouth)), "nose not between the eyes and the mouth"),
    ]
    reasons = [""] * len(points)
    for failed, text in tests:
        for k in np.flatnonzero(failed):
            if not reasons[k]:
                reasons[k] = text.format(eye=eyes[k], w=sizes[k, 0], h=sizes[k, 1])
    return reasons


def sample_rows(n: int, k: int = SAMPLE) -> np.ndarray:
    """``k`` evenly spaced row numbers of ``n`` (the same on every run)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(int)) if n else np.array([], int)


def compare_with_detection(paths: Sequence[str], points: np.ndarray, *, device: str = "cpu",
                           min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7)) -> Agreement:
    """Re-detect the faces of ``paths`` and measure how far ``points`` (N, 5, 2) are from them."""
    # deferred: loads torch, torchvision, cv2, pandas, joblib
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
    return agreement(np.asarray(given, np.float64).reshape(-1, 5, 2), np.asarray(found).reshape(-1, 5, 2),
                     len(paths))


def _spread(points: np.ndarray) -> np.ndarray:
    """Per image (N, 5, 2), the RMS distance of its points from their centroid."""
    return np.sqrt(((points - points.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1))


def agreement(given: np.ndarray, found: np.ndarray, sampled: int) -> Agreement:
    """How far ``given`` points (N, 5, 2) are from ``found`` (re-detected) ones of the same N images."""
    if not len(found):
        return Agreement(0, sampled, (float("nan"),) * 2, float("nan"), float("nan"))
    diff = given - found
    offset = np.median(diff.reshape(-1, 2), axis=0)
    misfit = np.linalg.norm(diff - offset, axis=2).mean(axis=1)            # px, per image
    eyes = np.linalg.norm(found[:, 1] - found[:, 0], axis=1).clip(1.0)     # px, per image
    scale = np.median(_spread(given) / _spread(found).clip(1e-9))
    return Agreement(len(found), sampled, (float(offset[0]), float(offset[1])),
                     float(np.median(misfit / eyes)), float(np.median(misfit)), float(np.median(eyes)),
                     float(scale))
