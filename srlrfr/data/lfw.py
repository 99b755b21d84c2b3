"""LFW View 2: parse the official pairs file, assign folds, index the images used."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv
from ..registry import DATASETS
from .base import IMAGES_CSV, PAIRS_CSV, DatasetSpec, outside_root
from .fetch import resolve_lfw_images, resolve_lfw_pairs


class PairsError(ValueError):
    """A pairs file that is not in the official LFW format or names missing images."""


def lfw_image_id(name: str, number: int) -> str:
    return f"{name}/{name}_{number:04d}.jpg"


def bad_person_name(name: str) -> str | None:
    """Why ``name`` cannot be a person's folder name (a path separator, '.' or '..'), or None."""
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"person name {name!r} is a path (it holds a separator or is '.' or '..'), not a folder name"
    return None


def _pair_line(fields: list[str], same: bool, where: str, line: str) -> tuple[str, str]:
    """(left, right) image ids of one pairs line."""
    try:
        if same and len(fields) == 3:
            names, numbers = (fields[0], fields[0]), (int(fields[1]), int(fields[2]))
        elif not same and len(fields) == 4:
            names, numbers = (fields[0], fields[2]), (int(fields[1]), int(fields[3]))
        else:
            kind = "same-person 'name i j'" if same else "different-person 'name1 i name2 j'"
            raise PairsError(f"{where}: expected a {kind} line, got {line!r}")
    except ValueError as exc:
        if isinstance(exc, PairsError):
            raise
        raise PairsError(f"{where}: image numbers must be integers: {line!r}") from None
    for name in names:
        problem = bad_person_name(name)
        if problem:
            raise PairsError(f"{where}: {problem}; a pairs file may name only images under the dataset's folder")
    return lfw_image_id(names[0], numbers[0]), lfw_image_id(names[1], numbers[1])


def parse_pairs(path: str | Path) -> tuple[pd.DataFrame, int, int]:
    """Read an official-format pairs file.

    Header ``<sets>\\t<n>``; then each set holds n same-person lines
    (``name i j``) followed by n different-person lines (``name1 i name2 j``).
    Returns (pairs with columns set, label, left, right, line; sets; n);
    ``line`` is the line number in the file, for messages.
    """
    path = Path(path)
    numbered = [(k, ln.rstrip("\r\n")) for k, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    if not numbered:
        raise PairsError(f"{path}: empty pairs file")
    head = numbered[0][1].split()
    try:
        sets, n = (int(v) for v in head)
    except ValueError:
        raise PairsError(f"{path}:{numbered[0][0]}: header must be '<sets><TAB><pairs per class>', "
                         f"got {numbered[0][1]!r}") from None
    body = numbered[1:]
    if len(body) != sets * 2 * n:
        raise PairsError(f"{path}: header promises {sets} x 2 x {n} = {sets * 2 * n} pairs, file has {len(body)}")
    rows = []
    for i, (lineno, line) in enumerate(body):
        same = (i // n) % 2 == 0
        left, right = _pair_line(line.split(), same, f"{path}:{lineno}", line)
        rows.append((i // (2 * n), int(same), left, right, lineno))
    return pd.DataFrame(rows, columns=["set", "label", "left", "right", "line"]), sets, n


def check_inside(pairs: pd.DataFrame, images_root: Path, pairs_path) -> None:
    """Every image of the pairs, links followed, lies under ``images_root`` (resolved); else name the line."""
    seen: set[str] = set()
    for left, right, lineno in zip(pairs["left"], pairs["right"], pairs["line"]):
        for image in (left, right):
            if image in seen:
                continue
            seen.add(image)
            problem = outside_root(images_root, image)
            if problem:
                raise PairsError(f"{pairs_path}:{lineno}: {problem}; a pairs file may name only images under "
                                 f"the dataset's folder (a link to another dataset's image would mix them)")


OFFICIAL_LAYOUT = (10, 300)  # the official pairs.txt: 10 sets of 300 same + 300 different pairs


def fold_problem(sets: int, n: int, folds: int) -> str | None:
    """Why ``folds`` folds cannot be cut from ``sets`` sets of ``n`` pairs per class (None if they can)."""
    if folds % sets:
        return f"{folds} folds cannot be made from a pairs file with {sets} sets (folds must be a multiple of the sets)"
    if n < folds // sets:
        return f"{n} pairs per class cannot be split into {folds // sets} folds"
    return None


def check_folds(cfg: dict) -> str | None:
    """``evaluate.folds`` against the pairs file's header, before any work: the problem, or None.

    A local file is read (its first line only); 'download' is the official
    layout. An unreadable file is left to the ingest step to report.
    """
    source, folds = cfg["data"]["lfw"]["pairs"], cfg["evaluate"]["folds"]
    if source == "download":
        sets, n, where = *OFFICIAL_LAYOUT, "the official pairs.txt"
    else:
        path = Path(source).expanduser()
        path = path / "pairs.txt" if path.is_dir() else path
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                sets, n = (int(v) for v in fh.readline().split())
        except (OSError, ValueError):
            return None
        where = str(path)
    problem = fold_problem(sets, n, folds)
    return None if problem is None else f"{problem} ({where}: {sets} sets of {n} pairs per class)"


def assign_folds(pairs: pd.DataFrame, sets: int, n: int, folds: int) -> pd.Series:
    """Fold id per pair.

    With the official file (10 sets) the folds are the 10 consecutive blocks of
    600 pairs, as in the paper. With fewer sets, each set's same and different
    blocks are cut into ``folds / sets`` consecutive chunks, so every fold keeps
    the balance of both classes.
    """
    problem = fold_problem(sets, n, folds)
    if problem:
        raise PairsError(f"key 'evaluate.folds': {problem}")
    per_set = folds // sets
    within = pairs.groupby(["set", "label"]).cumcount().to_numpy()
    chunk = (within * per_set) // n
    return pd.Series(pairs["set"].to_numpy() * per_set + chunk, index=pairs.index, name="fold")


def ingest_lfw(images_root: str | Path, pairs_path: str | Path, folds: int,
               out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the image index (only images the pairs use) and the normalised pairs table."""
    images_root = Path(images_root).resolve()
    pairs, sets, n = parse_pairs(pairs_path)
    pairs["fold"] = assign_folds(pairs, sets, n, folds)
    pairs.insert(0, "pair", range(len(pairs)))
    check_inside(pairs, images_root, pairs_path)
    used = pd.unique(pd.concat([pairs["left"], pairs["right"]], ignore_index=True))
    missing = [i for i in used if not (images_root / i).is_file()]
    if missing:
        shown = ", ".join(missing[:5])
        raise PairsError(f"{pairs_path} names {len(missing)} image(s) not under {images_root}: {shown}"
                         + (" ..." if len(missing) > 5 else ""))
    index = pd.DataFrame({
        "image_id": used,
        "path": [str(images_root / i) for i in used],
        "identity": [i.split("/")[0] for i in used],
    })
    write_csv(Path(out_dir) / IMAGES_CSV, index)
    write_csv(Path(out_dir) / PAIRS_CSV, pairs[["pair", "fold", "label", "left", "right"]])
    return index, pairs


def _ingest(cfg: dict, out_dir: Path) -> None:
    src, cache = cfg["data"]["lfw"], Path(cfg["data"]["cache"]) / "lfw"
    ingest_lfw(resolve_lfw_images(src["images"], cache), resolve_lfw_pairs(src["pairs"], cache),
               cfg["evaluate"]["folds"], out_dir)


DATASETS.register("lfw", DatasetSpec("lfw", "verification", _ingest, ("data.lfw", "data.cache", "evaluate.folds")))
