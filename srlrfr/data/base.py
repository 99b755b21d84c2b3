"""What a registered dataset declares, and the index folder every ingest writes.

``data/index/<dataset>/images.csv`` lists the images (image_id, path,
identity); verification sets add ``pairs.csv`` (pair, fold, label, left,
right); identification sets add a ``role`` column to images.csv
(gallery, probe, distractor). A new dataset is one module under ``srlrfr/data`` that registers a
:class:`DatasetSpec` plus its import line in ``srlrfr/data/catalog.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

IMAGES_CSV = "images.csv"
PAIRS_CSV = "pairs.csv"
ROLES = ("verification", "training", "identification")


@dataclass(frozen=True)
class DatasetSpec:
    """role: 'verification' (pairs; probes degraded by degrade.factors),
    'training' (the SRNet's multi-scale pyramid) or 'identification' (a
    gallery and probes, images.csv's ``role`` column).
    ingest(cfg, out_dir): resolve the source (download or local copy) and
    write the index folder; it may read only the config keys in ``settings``.
    """
    name: str
    role: str
    ingest: Callable[[dict, Path], None]
    settings: tuple[str, ...]

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"dataset {self.name}: role must be one of {ROLES}, got {self.role!r}")


def outside_root(root: Path, name: str) -> str | None:
    """Why the image ``name`` of a list file leaves ``root`` (already resolved), or None if it stays under it.

    Lists (identity, pairs, landmark files) name images relative to their
    dataset's folder; an absolute name, a ``..`` or a symbolic link pointing
    elsewhere would bring in another dataset's images (an LFW test image as
    CelebA training data), so the target is resolved before it is compared.
    """
    if Path(name).is_absolute() or "\\" in name:
        return f"{name!r} is not a path relative to the dataset's folder {root}"
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        return f"{name!r} resolves to {target}, outside the dataset's folder {root}"
    return None


def unsafe_name(name: str) -> str | None:
    """Why ``name`` cannot be a relative image path of a dataset (absolute, or with a '..' part), or None."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in parts:
        return f"{name!r} leaves the dataset's folder (an absolute path or a '..' part)"
    return None
