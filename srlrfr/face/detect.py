"""Landmark detection over a list of images -> one CSV row per image.

Which face: LFW-style images show the person of interest in the middle, other
people may appear at the edges. :func:`choose_face` ranks detections by
``box area * exp(-(d / r)^2)``, where ``d`` is the distance from the box centre
to the image centre and ``r`` half the shorter image side: a face centred in
the image keeps its full area, one whose centre sits on the edge of the
inscribed circle counts as 37% of its area. The largest weighted area wins.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import write_csv
from ..faults import pause_point
from .landmarks_io import BOX_COLUMNS, COLUMNS, LANDMARK_COLUMNS
from .mtcnn import MTCNN, Detections, pnet_bucket

log = logging.getLogger(__name__)


class ImageReadError(OSError):
    """An image that cannot be used. ``status``: 'unreadable' (missing, or the file system refuses
    to read it) or 'corrupt' (read, but empty, truncated or not a decodable image)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); grey images are expanded to 3 channels.

    The whole file is decoded from memory: OpenCV's in-memory decoder fails on
    any premature end of data (a truncated JPEG or PNG), where ``cv2.imread``
    would warn on stderr and fill the missing rows with grey. The pixels are
    the same as imread's for a sound file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"image cannot be read: {path} ({exc.strerror or exc})", "unreadable") from None
    if not data:
        raise ImageReadError(f"image is empty (0 bytes): {path}", "corrupt")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageReadError(f"image cannot be decoded (corrupt: truncated, damaged or not an image; "
                             f"{len(data)} bytes): {path}", "corrupt")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(path: str | os.PathLike) -> tuple[float, float]:
    """(width, height) of an image from its header alone, as :func:`read_rgb` will see it (EXIF
    rotation by a quarter turn swaps them, as OpenCV applies it); NaN when the file cannot be read."""
    # deferred: loads PIL
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            w, h = img.size
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return float("nan"), float("nan")
    return (float(h), float(w)) if turned else (float(w), float(h))


class DamagedImageError(ValueError):
    """A corrupt or unreadable image under ``align.corrupt: fail``."""

    def __init__(self, err: ImageReadError, image_id: str):
        super().__init__(f"{err} (image_id {image_id}, status {err.status}); align.corrupt is 'fail', so the run "
                         f"stops. Fix: replace the file (extract or download the dataset again), or set "
                         f"align.corrupt: exclude to leave it out (its pairs are excluded and counted)")


def choose_face(dets: Detections, image_shape: Sequence[int]) -> int | None:
    """Index of the protocol's face among ``dets`` (see module doc), None if there is none."""
    if len(dets) == 0:
        return None
    h, w = image_shape[:2]
    b = dets.boxes.astype(np.float64)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    centre = (b[:, :2] + b[:, 2:]) / 2
    d = np.hypot(centre[:, 0] - (w - 1) / 2, centre[:, 1] - (h - 1) / 2)
    weight = area * np.exp(-(d / (min(h, w) / 2)) ** 2)
    return int(np.argmax(weight))


def _row(image_id: str, path: str, status: str, dets: Detections | None = None,
         k: int | None = None) -> dict:
    row = {"image_id": image_id, "path": path, "status": status}
    if dets is not None and k is not None:
        row["score"] = float(dets.scores[k])
        row.update(zip(BOX_COLUMNS, dets.boxes[k].astype(float)))
        row.update(zip(LANDMARK_COLUMNS, dets.landmarks[k].reshape(-1).astype(float)))
    return row


def _size_order(width: float, height: float) -> tuple:
    """Sort key: unknown size first, then by P-Net bucket, then by size."""
    if np.isnan(width):
        return (0, 0, 0, 0.0, 0.0)
    return (1, *pnet_bucket(int(height), int(width)), width, height)


def detect_landmarks(items: list[tuple[str, str]], out_csv: str | os.PathLike, *, device: str = "cpu",
                     batch_size: int = 16, min_face_size: int = 20,
                     thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                     corrupt: str = "exclude") -> pd.DataFrame:
    """Detect the chosen face's 5 landmarks in each (image_id, path); write ``out_csv`` atomically.

    Status per image: ok, no_face, corrupt or unreadable (see :func:`read_rgb`).
    ``corrupt="exclude"`` records a damaged image and goes on; ``"fail"`` stops
    at the first one, writing nothing. Coordinates are pixels of the source
    image (pixel centres at integers).
    """
    ids = [i for i, _ in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate image_id {dup!r} in the items to detect")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    detector = MTCNN(device=device, min_face_size=min_face_size, thresholds=thresholds)
    rows: list[dict] = []
    # Images of one P-Net bucket share P-Net batches (and same-size ones their crops), and an image's
    # points do not depend on its batch: so go bucket by bucket, size by size within (headers with no
    # size first, so that align.corrupt: fail stops early).
    sizes = {image_id: image_size(path) for image_id, path in items}
    todo = sorted(items, key=lambda item: _size_order(*sizes[item[0]]))
    with tqdm(total=len(items), desc="MTCNN landmarks", unit="img") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            images, readable = [], []
            for image_id, path in batch:
                try:
                    images.append(read_rgb(path))
                    readable.append((image_id, str(path)))
                except ImageReadError as err:
                    if corrupt == "fail":
                        raise DamagedImageError(err, image_id) from None
                    log.warning("%s (image_id %s): recorded as %s", err, image_id, err.status)
                    rows.append(_row(image_id, str(path), err.status))
            for (image_id, path), img, dets in zip(readable, images, detector.detect(images)):
                k = choose_face(dets, img.shape)
                rows.append(_row(image_id, path, "ok", dets, k) if k is not None
                            else _row(image_id, path, "no_face"))
            bar.update(len(batch))
            pause_point("landmarks:batch")
    order = {image_id: n for n, image_id in enumerate(ids)}
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.sort_values("image_id", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    numeric = ["score", *BOX_COLUMNS, *LANDMARK_COLUMNS]
    frame[numeric] = frame[numeric].astype(np.float64).round(3)
    write_csv(out_csv, frame)
    return frame


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """The 'no face' report: rows whose status is not ok (image_id, path, status)."""
    status = df["status"] if "status" in df else pd.Series("ok", index=df.index)
    cols = [c for c in ("image_id", "path", "status") if c in df]
    return df.loc[status != "ok", cols].reset_index(drop=True)
