"""5-point similarity alignment onto a registered geometry (e.g. 112x96 SphereFace).

The transform is the least-squares non-reflective similarity (rotation, uniform
scale, translation), as MATLAB ``cp2tform(..., 'nonreflective similarity')``;
the warp is OpenCV bicubic with a black border. Points are (x, y) pixels with
pixel centres at integers (OpenCV's convention) in both images.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import save_npz
from ..geometry import Geometry, get_geometry
from .detect import ImageReadError, read_rgb
from .landmarks_io import landmarks_array

log = logging.getLogger(__name__)
NO_FACE_POLICIES = ("center", "exclude")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M (float64) minimising sum |M [src;1] - dst|^2 over similarities.

    M = [[a, -b, tx], [b, a, ty]]: the problem is linear in (a, b, tx, ty), so it
    is one least-squares solve of the stacked x and y equations.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise ValueError(f"src and dst must both be (N, 2) point arrays, got {src.shape} and {dst.shape}")
    if len(src) < 2:
        raise ValueError(f"a similarity needs at least 2 point pairs, got {len(src)}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("src/dst points contain NaN or inf")
    n = len(src)
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones(n), np.zeros(n)
    design = np.concatenate([np.stack([x, -y, one, zero], 1),    # u = a x - b y + tx
                             np.stack([y, x, zero, one], 1)])    # v = b x + a y + ty
    target = np.concatenate([dst[:, 0], dst[:, 1]])
    (a, b, tx, ty), _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    if rank < 4:
        raise ValueError("degenerate source points (all identical): similarity is undetermined")
    return np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)


def _geometry(geometry: Geometry | str) -> Geometry:
    return get_geometry(geometry) if isinstance(geometry, str) else geometry


def align_face(img: np.ndarray, points: np.ndarray, geometry: Geometry | str) -> np.ndarray:
    """Warp ``img`` so that its 5 ``points`` land on the geometry's reference points."""
    geo = _geometry(geometry)
    points = np.asarray(points, np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks, got shape {points.shape}")
    matrix = similarity_transform(points, geo.reference_points())
    crop = cv2.warpAffine(img, matrix, (geo.width, geo.height), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop.reshape(geo.height, geo.width, -1)


def align_images(items: Sequence[tuple[str, str]], landmarks_df: pd.DataFrame, geometry_name: str,
                 out_npz: str | os.PathLike, *, no_face: str = "center") -> dict[str, np.ndarray]:
    """Align every (image_id, path) into one npz: ``images`` uint8 (N,H,W,3) RGB,
    ``ids`` (str, items' order), ``landmark_ok`` bool, ``points`` (N,5,2) source
    points used (NaN for a black placeholder).

    Images without landmarks (status not ok): ``no_face="center"`` aligns them
    with a fallback point set, the mean landmark position of this run's ok
    images in relative coordinates (x / width, y / height), scaled to the
    image's size; ``"exclude"`` writes a black placeholder. Either way
    ``landmark_ok`` is False so evaluation can tell. An unreadable image is a
    black placeholder too (logged with its path).
    """
    if no_face not in NO_FACE_POLICIES:
        raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, got {no_face!r}")
    geo = get_geometry(geometry_name)
    ids = [image_id for image_id, _ in items]
    points, ok = landmarks_array(landmarks_df, ids)
    images = np.zeros((len(items), geo.height, geo.width, 3), np.uint8)
    used = np.full((len(items), 5, 2), np.nan)
    relative: list[np.ndarray] = []
    pending: list[int] = []

    def read(k: int) -> np.ndarray | None:
        try:
            return read_rgb(items[k][1])
        except ImageReadError as err:
            log.warning("%s (image_id %s): black placeholder", err, items[k][0])
            return None

    for k in tqdm(range(len(items)), desc=f"align {geometry_name}", unit="img"):
        if not ok[k]:
            pending.append(k)
            continue
        img = read(k)
        if img is None:
            ok[k] = False
            continue
        images[k], used[k] = align_face(img, points[k], geo), points[k]
        relative.append(points[k] / [img.shape[1], img.shape[0]])

    if pending and no_face == "center":
        if relative:
            mean_rel = np.mean(relative, axis=0)
        else:  # nothing detected in this run: treat the whole image as the aligned crop
            log.warning("no image of this run has landmarks; fallback uses the %s reference layout", geo.name)
            mean_rel = geo.reference_points() / [geo.width, geo.height]
        for k in pending:
            img = read(k)
            if img is not None:
                used[k] = mean_rel * [img.shape[1], img.shape[0]]
                images[k] = align_face(img, used[k], geo)
    result = {"images": images, "ids": np.array(ids, dtype=np.str_), "landmark_ok": ok.astype(bool),
              "points": used}
    save_npz(out_npz, **result)
    return result
