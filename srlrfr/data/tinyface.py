"""TinyFace (Cheng, Zhu, Gong, ACCV 2018): native low-resolution faces for 1:N identification.

Layout of a local copy (tinyface.zip from qmul-tinyface.github.io unpacks to
``tinyface/``)::

    tinyface/Testing_Set/Gallery_Match/<identity>_<n>.jpg       gallery, one or more per identity
    tinyface/Testing_Set/Probe/<identity>_<n>.jpg               probes of the same identities
    tinyface/Testing_Set/Gallery_Distractor/**/<any>.jpg        distractors (no probe; ~153k)
    tinyface/Testing_Set/{gallery_match,probe}_img_ID_pairs.mat  the same identities, as MATLAB files
    tinyface/Training_Set/<identity>/...                        not used here

The identity is the file name's part before the first ``_`` (what the .mat files
list too, so they are not read: no SciPy needed). ``data.tinyface.source`` is a
folder at any of these levels, or tinyface.zip (extracted into the cache).
The ingest writes images.csv with a ``role`` column (gallery, probe,
distractor); distractors have identity -1. TinyFace is not downloaded (its
Drive/Baidu links change and no checksum is published by its authors).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_json
from ..registry import DATASETS
from .base import IMAGES_CSV, DatasetSpec
from .fetch import local_folder_or_archive

TESTING_SET = "Testing_Set"
# folder under Testing_Set -> role in images.csv
FOLDERS = {"Gallery_Match": "gallery", "Probe": "probe", "Gallery_Distractor": "distractor"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HINT = ("Download TinyFace from https://qmul-tinyface.github.io/ elsewhere and set data.tinyface.source "
        "in params.yaml to tinyface.zip or to the folder holding Testing_Set/.")
SUMMARY_JSON = "summary.json"


def find_testing_set(root: str | Path) -> Path:
    """The Testing_Set folder under ``root`` (``root`` itself, root/Testing_Set or root/tinyface/Testing_Set)."""
    root = Path(root)
    for candidate in (root, root / TESTING_SET, root / "tinyface" / TESTING_SET):
        if all((candidate / name).is_dir() for name in ("Gallery_Match", "Probe")):
            return candidate
    raise FileNotFoundError(f"no TinyFace Testing_Set in {root}: expected Testing_Set/Gallery_Match/ and "
                            f"Testing_Set/Probe/ there or under tinyface/. {HINT}")


def _identity(path: Path, origin: Path) -> int:
    head = path.stem.split("_")[0]
    if not head.isdigit():
        raise ValueError(f"{path}: TinyFace names gallery and probe images <identity>_<n>.jpg; "
                         f"cannot read an identity from {path.name!r} (is {origin} a TinyFace copy?)")
    return int(head)


def ingest_tinyface(root: str | Path, out_dir: str | Path, *, max_distractors: int | None = None) -> pd.DataFrame:
    """images.csv: image_id (path under Testing_Set), path, identity (-1: distractor), role."""
    testing = find_testing_set(root).resolve()
    rows = []
    for folder, role in FOLDERS.items():
        files = sorted(p for p in (testing / folder).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if (testing / folder).is_dir() else []
        if role == "distractor" and max_distractors is not None:
            files = files[:max_distractors]
        for p in files:
            ident = -1 if role == "distractor" else _identity(p, testing)
            rows.append((p.relative_to(testing).as_posix(), str(p), ident, role))
    index = pd.DataFrame(rows, columns=["image_id", "path", "identity", "role"])
    counts = index["role"].value_counts()
    if not counts.get("probe") or not counts.get("gallery"):
        raise FileNotFoundError(f"{testing}: no images in Gallery_Match/ or Probe/. {HINT}")
    unmatched = sorted(set(index.loc[index["role"] == "probe", "identity"])
                       - set(index.loc[index["role"] == "gallery", "identity"]))
    if unmatched:
        raise ValueError(f"{testing}: probe identities {unmatched[:10]} have no Gallery_Match image; "
                         f"closed-set identification needs every probe identity in the gallery")
    write_csv(Path(out_dir) / IMAGES_CSV, index)
    summary = {role: int(counts.get(role, 0)) for role in FOLDERS.values()}
    gallery_ids = index.loc[index["role"] == "gallery", "identity"]
    summary.update(testing_set=str(testing), identities=int(gallery_ids.nunique()), max_distractors=max_distractors)
    write_json(Path(out_dir) / SUMMARY_JSON, summary)
    print(f"tinyface: {summary['gallery']} gallery, {summary['probe']} probe and {summary['distractor']} distractor "
          f"images of {summary['identities']} identities from {testing}")
    return index


def resolve_tinyface(source: str | None, cache_dir: str | Path) -> Path:
    """A local folder, or tinyface.zip extracted into ``cache_dir``; never a download."""
    if source is None or source == "download":
        raise FileNotFoundError(f"data.tinyface.source is {source!r}: srlrfr reads a local TinyFace copy only. {HINT}")
    root = local_folder_or_archive(source, cache_dir)
    if root is None:
        raise FileNotFoundError(f"TinyFace source {Path(source).expanduser()} (data.tinyface.source) is neither a "
                                f"folder nor an archive. {HINT}")
    return root


def _ingest(cfg: dict, out_dir: Path) -> None:
    src = cfg["data"]["tinyface"]
    root = resolve_tinyface(src["source"], Path(cfg["data"]["cache"]) / "tinyface")
    ingest_tinyface(root, out_dir, max_distractors=src["max_distractors"])


DATASETS.register("tinyface", DatasetSpec("tinyface", "identification", _ingest, ("data.tinyface", "data.cache")))
