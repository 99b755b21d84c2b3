"""CelebA training faces: index the identity file, optionally a subset."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv, write_json
from ..registry import DATASETS
from .base import IMAGES_CSV, DatasetSpec, outside_root, unsafe_name
from .fetch import resolve_celeba


def read_identities(path: str | Path) -> pd.DataFrame:
    """image_id, identity and the line of each entry; a name leaving the images folder is refused."""
    path = Path(path)
    rows = []
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text identity file ({exc})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<file> <identity id>', got {line!r}")
        problem = unsafe_name(fields[0])
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}; the identity file may name only images under "
                             f"the CelebA images folder")
        rows.append((fields[0], int(fields[1]), lineno))
    if not rows:
        raise ValueError(f"{path}: no identities listed")
    return pd.DataFrame(rows, columns=["image_id", "identity", "line"])


def check_inside(ids: pd.DataFrame, images_dir: Path, identity_file) -> None:
    """Every listed image, links followed, lies under ``images_dir`` (resolved); else name the line."""
    for name, lineno in zip(ids["image_id"], ids["line"]):
        problem = outside_root(images_dir, name)
        if problem:
            raise ValueError(f"{identity_file}:{lineno}: {problem}; the identity file may name only images "
                             f"under the CelebA images folder (a link to another dataset's image would mix "
                             f"it into training)")


SUMMARY_JSON = "summary.json"
MISSING_POLICIES = ("skip", "error")


def ingest_celeba(images_dir: str | Path, identity_file: str | Path, out_dir: str | Path, *,
                  max_identities: int | None = None, images_per_identity: int | None = None,
                  missing: str = "skip") -> pd.DataFrame:
    """Index the CelebA images present on disk, with their identities.

    Identities are taken in ascending id order and files in name order, so a
    subset is the same on every machine. Images listed but not on disk are
    counted on the console and in ``summary.json`` beside ``images.csv``;
    ``missing="error"`` refuses them instead (a half-extracted archive).
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    images_dir = Path(images_dir).resolve()
    ids = read_identities(identity_file).sort_values(["identity", "image_id"], kind="stable")
    check_inside(ids, images_dir, identity_file)
    present = ids["image_id"].map(lambda f: (images_dir / f).is_file())
    if not present.any():
        raise FileNotFoundError(f"none of the {len(ids)} images listed in {identity_file} is in {images_dir}")
    absent = ids.loc[~present, "image_id"].tolist()
    if absent and missing == "error":
        raise FileNotFoundError(
            f"{len(absent)} of the {len(ids)} images listed in {identity_file} are missing from {images_dir} "
            f"(e.g. {', '.join(absent[:5])}); data.celeba.missing is 'error'. Fix: extract or download CelebA "
            f"again (a partial extraction?), or set data.celeba.missing: skip to index only the images present")
    ids = ids[present]
    if images_per_identity:
        ids = ids.groupby("identity", sort=False).head(images_per_identity)
    if max_identities:
        keep = ids["identity"].drop_duplicates().head(max_identities)
        ids = ids[ids["identity"].isin(keep)]
    index = pd.DataFrame({
        "image_id": ids["image_id"].to_numpy(),
        "path": [str(images_dir / f) for f in ids["image_id"]],
        "identity": ids["identity"].to_numpy(),
    })
    write_csv(Path(out_dir) / IMAGES_CSV, index)
    write_json(Path(out_dir) / SUMMARY_JSON, {"listed": len(present), "on_disk": int(present.sum()),
                                              "missing": len(absent), "missing_examples": absent[:20],
                                              "indexed": len(index), "identity_file": str(identity_file)})
    print(f"celeba: {len(index)} images indexed; {int(present.sum())} of the {len(present)} listed in "
          f"{identity_file} are on disk" + (f", {len(absent)} MISSING (e.g. {', '.join(absent[:3])})"
                                            if absent else ""))
    return index


def _ingest(cfg: dict, out_dir: Path) -> None:
    src = cfg["data"]["celeba"]
    images_dir, identity_file = resolve_celeba(src["source"], Path(cfg["data"]["cache"]) / "celeba",
                                               images=src["images"])
    ingest_celeba(images_dir, identity_file, out_dir, max_identities=src["max_identities"],
                  images_per_identity=src["images_per_identity"], missing=src["missing"])


DATASETS.register("celeba", DatasetSpec("celeba", "training", _ingest, ("data.celeba", "data.cache")))
