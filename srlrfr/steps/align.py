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
    # deferred: loads torch, torchvision, cv2, joblib
    from ..face.align import align_face
    from ..face.detect import DamagedImageError, ImageReadError, read_rgb

    if no_face not in NO_FACE_POLICIES:
        raise ValueError(f"no_face must be one of {NO_FACE_POLICIES}, got {no_face!r}")
    if corrupt not in CORRUPT_POLICIES:
        raise ValueError(f"corrupt must be one of {CORRUPT_POLICIES}, got {corrupt!r}")
    geo = get_geometry(geometry_name)
    index = pd.read_csv(index_csv)
    items = list(zip(index["image_id"].astype(str), index["path"]))
    table = read_landmarks_csv(landmarks_csv)
    points, ok = landmarks_array(table, [i for i, _ in items])
    status = table.set_index("image_id").loc[[i for i, _ in items], "status"].to_numpy(dtype=object)
    if corrupt == "fail" and np.isin(status, DAMAGED).any():
        k = int(np.flatnonzero(np.isin(status, DAMAGED))[0])
        raise DamagedImageError(ImageReadError(f"{landmarks_csv} lists {items[k][1]} as {status[k]}", status[k]),
                                items[k][0])
    used = np.full((len(items), 5, 2), np.nan)
    relative: list[np.ndarray] = []
    pending: list[int] = []
    blank = np.zeros((1, geo.height, geo.width, 3), np.uint8)

    def read(k: int) -> np.ndarray | None:
        try:
            return read_rgb(items[k][1])
        except ImageReadError as err:
            if corrupt == "fail":
                raise DamagedImageError(err, items[k][0]) from None
            log.warning("%s (image_id %s): black placeholder, status %s", err, items[k][0], err.status)
            status[k] = err.status
            return None

    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        with write_npy(tmp / IMAGES, (len(items), geo.height, geo.width, 3)) as out:
            for k in tqdm(range(len(items)), desc=f"align {geometry_name}", unit="img"):
                img = read(k) if ok[k] else None
                why = implausible(points[k], [img.shape[1::-1]])[0] if img is not None else ""
                if why:
                    log.warning("%s (image_id %s): landmarks not a face's (%s); treated as no face, status %s",
                                items[k][1], items[k][0], why, BAD_LANDMARKS)
                    status[k], img = BAD_LANDMARKS, None
                if img is None:
                    ok[k] = False
                    pending.append(k)
                    out.write(blank)
                    continue
                used[k] = points[k]
                out.write(align_face(img, points[k], geo, fit)[None])
                relative.append(points[k] / [img.shape[1], img.shape[0]])
                pause_point("align:image")

            if no_face == "center":
                if relative:
                    mean_rel = np.mean(relative, axis=0)
                else:  # nothing detected in this run: treat the whole image as the aligned crop
                    log.warning("no image of this run has landmarks; fallback uses the %s reference layout",
                                geo.name)
                    mean_rel = geo.reference_points() / [geo.width, geo.height]
                for k in pending:
                    img = read(k) if status[k] not in DAMAGED else None
                    if img is not None:
                        used[k] = mean_rel * [img.shape[1], img.shape[0]]
                        out.write_at(k, align_face(img, used[k], geo, fit)[None])
        faces = pd.DataFrame({"image_id": [i for i, _ in items], "status": status, "landmark_ok": ok})
        faces[LANDMARK_COLUMNS] = used.reshape(len(items), 10).round(4)
        write_csv(tmp / FACES, faces)
    damaged = np.isin(status, DAMAGED)
    n_bad = int((~ok & ~damaged).sum())
    print(f"align {geometry_name}: {int(ok.sum())}/{len(items)} faces aligned from landmarks; "
          f"{n_bad} without ({'mean-landmark crops' if no_face == 'center' else 'black placeholders'}; "
          f"{int((status == BAD_LANDMARKS).sum())} of them with landmarks that are not a face's); "
          f"{int((status == 'corrupt').sum())} corrupt and {int((status == 'unreadable').sum())} unreadable "
          f"(black placeholders, never scored or trained on)")
    return out_dir


def add_arguments(p) -> None:
    p.add_argument("--index", required=True, help="the dataset's images.csv")
    p.add_argument("--landmarks", required=True)
    p.add_argument("--geometry", required=True)
    p.add_argument("--out", required=True, help="aligned folder (data/aligned/<dataset>_<geometry>)")


def main(args, cfg) -> None:
    align(args.index, args.landmarks, args.geometry, args.out, no_face=cfg["align"]["no_face"],
          fit=cfg["align"]["fit"], corrupt=cfg["align"]["corrupt"])
