"""Rule align: every indexed image warped onto a geometry's reference points.

Writes ``data/aligned/<dataset>_<geometry>/``: ``images.npy`` (uint8 RGB
crops, streamed: memory stays one image whatever the dataset size) and
``faces.csv`` (image_id, status, landmark_ok, the five source points used).

The similarity is fitted as ``fit`` says (srlrfr.face.align.FITS; the
paper's is ``cp2tform``). Images without landmarks (status not ok): ``no_face="center"`` aligns them
with a fallback point set, the mean landmark position of this run's ok images
in relative coordinates (x / width, y / height) scaled to the image's size;
``"exclude"`` writes a black placeholder. Either way ``landmark_ok`` is False
so evaluation can tell. A damaged image (status ``corrupt`` or ``unreadable``,
srlrfr.face.detect.read_rgb) is a black placeholder that is never scored or
trained on; ``corrupt="fail"`` stops the step at the first one instead.
Points that cannot be a face's in this image (srlrfr.face.landmark_check.implausible:
checked again here on the decoded image, whatever wrote the landmark file) get
status ``bad_landmarks`` and are treated as no face.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..atomic import atomic_path, write_csv
from ..face.landmark_check import BAD_LANDMARKS, implausible
from ..face.landmarks_io import DAMAGED, LANDMARK_COLUMNS, landmarks_array, read_landmarks_csv
from ..faults import pause_point
from ..geometry import get_geometry
from ..storage import FACES, IMAGES, write_npy

NAME = "align"
HELP = "warp faces onto a geometry's reference points"
NO_FACE_POLICIES = ("center", "exclude")
CORRUPT_POLICIES = ("exclude", "fail")

log = logging.getLogger(__name__)


def align(index_csv, landmarks_csv, geometry_name: str, out_dir, *, no_face: str = "center",
          fit: str = "cp2tform", corrupt: str = "exclude") -> Path:
    if no_face not in NO_FACE_POLICIES:
        raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, got {no_face!r}")
    if corrupt not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt must be one of {CORRUPT_POLICIES}, got {corrupt!r}")
    job = _Alignment(index_csv, landmarks_csv, geometry_name, fit, corrupt)
    geo = job.geo
    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        with write_npy(tmp / IMAGES, (len(job.items), geo.height, geo.width, 3)) as out:
            job.from_landmarks(out)
            if no_face == "center":
                job.from_mean_landmarks(out)
        write_csv(tmp / FACES, job.faces())
    job.summary(no_face)
    return out_dir


class _Alignment:
    """One dataset's alignment: its images, their landmarks and status, the points each crop used."""

    def __init__(self, index_csv, landmarks_csv, geometry_name: str, fit: str, corrupt: str):
        # deferred: loads torch, torchvision, cv2, joblib
        from ..face.detect import DamagedImageError, ImageReadError
        self.geo, self.fit, self.corrupt = get_geometry(geometry_name), fit, corrupt
        self.name = geometry_name
        index = pd.read_csv(index_csv)
        self.items = items = list(zip(index["image_id"].astype(str), index["path"]))
        table = read_landmarks_csv(landmarks_csv)
        self.points, self.ok = landmarks_array(table, [i for i, _ in items])
        self.status = status = table.set_index("image_id").loc[[i for i, _ in items], "status"].to_numpy(dtype=object)
        if corrupt == "fail" and np.isin(status, DAMAGED).any():
            k = int(np.flatnonzero(np.isin(status, DAMAGED))[0])
            raise DamagedImageError(ImageReadError(f"{landmarks_csv} lists {items[k][1]} as {status[k]}",
                                                   status[k]), items[k][0])
        self.used = np.full((len(items), 5, 2), np.nan)
        self.relative: list[np.ndarray] = []  # ok images' points over their (width, height)
        self.pending: list[int] = []  # images without usable landmarks

    def read(self, k: int) -> np.ndarray | None:
        """Image k, or None for a damaged one (its status updated), unless corrupt='fail'."""
        # deferred: loads torch, torchvision, cv2, joblib
        from ..face.detect import DamagedImageError, ImageReadError, read_rgb
        try:
            return read_rgb(self.items[k][1])
        except ImageReadError as err:
            if self.corrupt == "fail":
                raise DamagedImageError(err, self.items[k][0]) from None
            log.warning("%s (image_id %s): black placeholder, status %s", err, self.items[k][0], err.status)
            self.status[k] = err.status
            return None

    def from_landmarks(self, out) -> None:
        """Every image aligned from its own points; the others black for now."""
        # deferred: loads cv2
        from ..face.align import align_face
        geo, points = self.geo, self.points
        blank = np.zeros((1, geo.height, geo.width, 3), np.uint8)
        for k in tqdm(range(len(self.items)), desc=f"align {self.name}", unit="img"):
            img = self.read(k) if self.ok[k] else None
            why = implausible(points[k], [img.shape[1::-1]])[0] if img is not None else ""
            if why:
                log.warning("%s (image_id %s): landmarks not a face's (%s); treated as no face, status %s",
                            self.items[k][1], self.items[k][0], why, BAD_LANDMARKS)
                self.status[k], img = BAD_LANDMARKS, None
            if img is None:
                self.ok[k] = False
                self.pending.append(k)
                out.write(blank)
                continue
            self.used[k] = points[k]
            out.write(align_face(img, points[k], geo, self.fit)[None])
            self.relative.append(points[k] / [img.shape[1], img.shape[0]])
            pause_point("align:image")

    def from_mean_landmarks(self, out) -> None:
        """no_face='center': the undamaged images without landmarks, aligned on the mean relative points."""
        # deferred: loads cv2
        from ..face.align import align_face
        geo = self.geo
        if self.relative:
            mean_rel = np.mean(self.relative, axis=0)
        else:  # nothing detected in this run: treat the whole image as the aligned crop
            log.warning("no image of this run has landmarks; fallback uses the %s reference layout", geo.name)
            mean_rel = geo.reference_points() / [geo.width, geo.height]
        for k in self.pending:
            img = self.read(k) if self.status[k] not in DAMAGED else None
            if img is not None:
                self.used[k] = mean_rel * [img.shape[1], img.shape[0]]
                out.write_at(k, align_face(img, self.used[k], geo, self.fit)[None])

    def faces(self) -> pd.DataFrame:
        faces = pd.DataFrame({"image_id": [i for i, _ in self.items], "status": self.status, "landmark_ok": self.ok})
        faces[LANDMARK_COLUMNS] = self.used.reshape(len(self.items), 10).round(4)
        return faces

    def summary(self, no_face: str) -> None:
        ok, status = self.ok, self.status
        n_bad = int((~ok & ~np.isin(status, DAMAGED)).sum())
        print(f"align {self.name}: {int(ok.sum())}/{len(self.items)} faces aligned from landmarks; "
              f"{n_bad} without ({'mean-landmark crops' if no_face == 'center' else 'black placeholders'}; "
              f"{int((status == BAD_LANDMARKS).sum())} of them with landmarks that are not a face's); "
              f"{int((status == 'corrupt').sum())} corrupt and {int((status == 'unreadable').sum())} unreadable "
              f"(black placeholders, never scored or trained on)")


def add_arguments(p) -> None:
    p.add_argument("--index", required=True, help="the dataset's images.csv")
    p.add_argument("--landmarks", required=True)
    p.add_argument("--geometry", required=True)
    p.add_argument("--out", required=True, help="aligned folder (data/aligned/<dataset>_<geometry>)")


def main(args, cfg) -> None:
    align(args.index, args.landmarks, args.geometry, args.out, no_face=cfg["align"]["no_face"],
          fit=cfg["align"]["fit"], corrupt=cfg["align"]["corrupt"])
