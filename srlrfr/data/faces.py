"""Any folder (or zip) of face images as SRNet training data: UTKFace, FFHQ, VGGFace2, a lab's own.

Every image file under the root is taken, recursively. No identity labels are
needed: the identity loss compares FNet(SR) with FNet(HR) of the same face, so
``identity`` is -1 throughout. The images then go through the same MTCNN
landmarks, alignment, no-face and corrupt-image exclusion and pyramid as CelebA;
what those steps drop is counted in faces.csv and in the train log.

``data.faces.max_images`` keeps a subset chosen by a hash of each file's path
under the root: the same subset on every machine, spread over the whole folder
(file names often sort by a label, UTKFace's by age), and adding files to the
folder keeps the images already chosen unless they are pushed out of the top N.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_json
from ..registry import DATASETS
from .base import IMAGES_CSV, DatasetSpec
from .fetch import local_folder_or_archive

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SUMMARY_JSON = "summary.json"
HINT = ("Set data.faces.images in params.yaml to a folder of face images (searched recursively) or a .zip of one, "
        "e.g. ../shared/data/utkface-16k/images or your copy of UTKFace, FFHQ or VGGFace2.")


def list_images(root: str | Path) -> tuple[list[Path], int]:
    """Image files under ``root`` in path order, and how many links were skipped.

    Symbolic links are not followed (a link could lead out of the dataset root and
    pull a test image into training); files are matched by suffix, case-insensitively.
    """
    root = Path(root)
    found, links = [], 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        links += sum((base / d).is_symlink() for d in dirs)
        dirs[:] = sorted(d for d in dirs if not (base / d).is_symlink())
        for name in files:
            p = base / name
            if p.is_symlink():
                links += 1
            elif p.suffix.lower() in IMAGE_SUFFIXES:
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix()), links


def _subset_key(image_id: str) -> str:
    return hashlib.sha1(image_id.encode()).hexdigest()


def ingest_faces(root: str | Path, out_dir: str | Path, *, max_images: int | None = None) -> pd.DataFrame:
    """images.csv: image_id (path under root), path, identity (-1: no labels); summary.json with the counts."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"face folder {root} (data.faces.images) is not a folder. {HINT}")
    files, links = list_images(root)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {root} (data.faces.images). "
                                f"{HINT}")
    ids = [p.relative_to(root).as_posix() for p in files]
    if max_images is not None and max_images < len(ids):
        keep = set(sorted(ids, key=_subset_key)[:max_images])
        ids = [i for i in ids if i in keep]
    index = pd.DataFrame({"image_id": ids, "path": [str(root / i) for i in ids], "identity": -1})
    write_csv(Path(out_dir) / IMAGES_CSV, index)
    write_json(Path(out_dir) / SUMMARY_JSON, {"root": str(root), "found": len(files), "indexed": len(index),
                                              "max_images": max_images, "links_skipped": links})
    print(f"faces: {len(index)} images indexed of {len(files)} found under {root}"
          + (f"; {links} symbolic links skipped" if links else ""))
    return index


def resolve_faces(source: str | None, cache_dir: str | Path) -> Path:
    """A local folder, or an archive extracted into ``cache_dir``; there is no download."""
    if source is None or source == "download":
        raise FileNotFoundError(f"data.faces.images is {source!r}: a face folder has no download. {HINT}")
    root = local_folder_or_archive(source, cache_dir)
    if root is None:
        raise FileNotFoundError(f"{Path(source).expanduser()} (data.faces.images) is neither a folder nor an "
                                f"archive. {HINT}")
    return root


def _ingest(cfg: dict, out_dir: Path) -> None:
    src = cfg["data"]["faces"]
    root = resolve_faces(src["images"], Path(cfg["data"]["cache"]) / "faces")
    ingest_faces(root, out_dir, max_images=src["max_images"])


DATASETS.register("faces", DatasetSpec("faces", "training", _ingest, ("data.faces", "data.cache")))
