"""Landmark files: srlrfr's own CSV, or the authors' two positional CSVs.

:func:`read_landmark_file` reads any of the layouts in :data:`FORMATS`,
chosen by content (``auto``) or declared:

- ``srlrfr``: the table written by :func:`srlrfr.face.detect.detect_landmarks`,
  or a user-supplied one with just ``image_id`` and the ten coordinates;
- ``headerless``: ``<image>,x1,y1,...,x5,y5`` per line and no header, as the
  authors' ``data/LFW.csv`` (image ``Person/Person_000N.jpg``, pixels of the
  original ``lfw.tgz`` images);
- ``header``: the same eleven positional fields after one header row, as the
  authors' ``data/celeba_clean_landmarks.csv`` (image: an ``img_celeba`` file
  name). The header's names are not used.

The positional layouts list the points in srlrfr's order (left eye, right eye,
nose, left mouth corner, right mouth corner).

srlrfr's columns (order free): ``image_id``, ``lex,ley,rex,rey,nx,ny,lmx,lmy,rmx,rmy``
(left eye, right eye, nose, left mouth, right mouth; x, y in pixels of the
source image), optional ``path``, ``status`` (ok | no_face | corrupt | unreadable |
not_listed | bad_landmarks, default ok), ``score``, ``box_x1,box_y1,box_x2,box_y2``. Rows whose
status is not ok leave the numbers empty, except bad_landmarks, which keeps the points that
failed the sanity check (srlrfr.face.landmark_check.implausible) for inspection.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..data.base import unsafe_name

LANDMARK_COLUMNS = ["lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy"]
BOX_COLUMNS = ["box_x1", "box_y1", "box_x2", "box_y2"]
COLUMNS = ["image_id", "path", "status", "score", *BOX_COLUMNS, *LANDMARK_COLUMNS]
# not_listed: a given landmark file (a training list) has no row for the image;
# bad_landmarks: points that cannot be a face's (srlrfr.face.landmark_check.implausible), treated as no_face
STATUSES = ("ok", "no_face", "corrupt", "unreadable", "not_listed", "bad_landmarks")
DAMAGED = ("corrupt", "unreadable")  # images that are never scored or trained on (srlrfr.face.detect.read_rgb)
_NUMERIC = ["score", *BOX_COLUMNS, *LANDMARK_COLUMNS]


class LandmarkCSVError(ValueError):
    pass


def _number(text: str, where: str, column: str) -> float:
    if text.strip() == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise LandmarkCSVError(f"{where}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LandmarkCSVError(f"{where}, column {column!r}: {text!r} is not a finite number")
    return value


def _new_image_id(text: str, where: str, first_line: dict[str, int], line_num: int) -> str:
    """The stripped image id of a row; empty, already seen (``first_line``: id -> line) or leaving the
    dataset's folder (absolute, '..') is an error."""
    image_id = text.strip()
    if not image_id:
        raise LandmarkCSVError(f"{where}: empty")
    problem = unsafe_name(image_id)
    if problem:
        raise LandmarkCSVError(f"{where}: {problem}; a landmark file may name only images under the "
                               f"dataset's folder, relative to it")
    if image_id in first_line:
        raise LandmarkCSVError(f"{where}: duplicate {image_id!r} (first on line {first_line[image_id]})")
    first_line[image_id] = line_num
    return image_id


def read_landmarks_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a landmark CSV; errors name the file, line and column.

    Returns a DataFrame with all of :data:`COLUMNS` (missing optional ones filled:
    ``status`` 'ok', ``path`` '', numbers NaN), in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark CSV not found: {path}")
    try:
        return _read(path)
    except (csv.Error, UnicodeDecodeError) as exc:  # a binary file, or a field over csv's size limit
        raise LandmarkCSVError(f"{path}: not a landmark CSV text file ({exc})") from None


def _read(path: Path) -> pd.DataFrame:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise LandmarkCSVError(f"{path}: empty file, expected a header line")
        header = [h.strip() for h in header]
        missing = [c for c in ["image_id", *LANDMARK_COLUMNS] if c not in header]
        if missing:
            raise LandmarkCSVError(f"{path}, line 1 (header): missing column(s) {missing}; "
                                   f"required: image_id, {', '.join(LANDMARK_COLUMNS)}")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise LandmarkCSVError(f"{path}, line 1 (header): duplicate column(s) {dupes}")
        col = {name: header.index(name) for name in COLUMNS if name in header}
        rows: list[dict] = []
        first_line: dict[str, int] = {}
        for fields in reader:
            where = f"{path}, line {reader.line_num}"
            if not fields:
                continue  # blank line
            if len(fields) != len(header):
                raise LandmarkCSVError(f"{where}: {len(fields)} fields, expected {len(header)} like the header")
            image_id = _new_image_id(fields[col["image_id"]], f"{where}, column 'image_id'", first_line,
                                     reader.line_num)
            status = fields[col["status"]].strip() if "status" in col else "ok"
            status = status or "ok"
            if status not in STATUSES:
                raise LandmarkCSVError(f"{where}, column 'status': {status!r}, expected one of {list(STATUSES)}")
            row = {"image_id": image_id, "path": fields[col["path"]] if "path" in col else "", "status": status}
            for name in _NUMERIC:
                row[name] = _number(fields[col[name]], where, name) if name in col else math.nan
            if status == "ok":
                empty = [c for c in LANDMARK_COLUMNS if math.isnan(row[c])]
                if empty:
                    raise LandmarkCSVError(f"{where}, column {empty[0]!r}: empty, but status is 'ok' "
                                           f"(all ten coordinates are required)")
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[_NUMERIC] = frame[_NUMERIC].astype(np.float64)
    return frame


FORMATS = ("srlrfr", "headerless", "header")
POSITIONAL_FIELDS = 1 + len(LANDMARK_COLUMNS)
_EXPECTED = (f"expected srlrfr's CSV (a header naming image_id, {', '.join(LANDMARK_COLUMNS)}) or "
             f"{POSITIONAL_FIELDS} positional fields per line: the image, then x1,y1,...,x5,y5 "
             "(the authors' LFW.csv has no header row, celeba_clean_landmarks.csv has one)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect_format(path: str | os.PathLike) -> str:
    """``srlrfr``, ``headerless`` or ``header``, from the first non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file not found: {path}")
    with open(path, newline="") as fh:
        for lineno, fields in enumerate(csv.reader(fh), 1):
            if not fields:
                continue
            names = [f.strip() for f in fields]
            if "image_id" in names:
                return "srlrfr"
            if len(fields) == POSITIONAL_FIELDS:
                # a header names its columns; one number among them means a data line with a bad value
                return "header" if not any(_is_number(f) for f in fields[1:]) else "headerless"
            raise LandmarkCSVError(f"{path}, line {lineno}: {len(fields)} fields; {_EXPECTED}")
    raise LandmarkCSVError(f"{path}: empty file; {_EXPECTED}")


def read_positional_csv(path: str | os.PathLike, *, header: bool) -> pd.DataFrame:
    """The authors' layout (see module doc) as a :data:`COLUMNS` frame; errors name file, line, column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"landmark file not found: {path}")
    rows: list[dict] = []
    first_line: dict[str, int] = {}
    names = ["image", *LANDMARK_COLUMNS]
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        skip_header = header
        for fields in reader:
            where = f"{path}, line {reader.line_num}"
            if not fields:
                continue
            if len(fields) != POSITIONAL_FIELDS:
                raise LandmarkCSVError(f"{where}: {len(fields)} fields, expected {POSITIONAL_FIELDS} "
                                       "(the image, then x1,y1,...,x5,y5)")
            if skip_header:
                skip_header = False
                if all(_is_number(f) for f in fields[1:]):
                    raise LandmarkCSVError(f"{where}: expected a header row, found coordinates "
                                           "(a file without header is the 'headerless' layout, like LFW.csv)")
                continue
            image_id = _new_image_id(fields[0], f"{where}, column 1 (image)", first_line, reader.line_num)
            row = {"image_id": image_id, "path": "", "status": "ok"}
            for k, (name, text) in enumerate(zip(names[1:], fields[1:]), 2):
                column = f"{where}, column {k} ({name})"
                if not text.strip():
                    raise LandmarkCSVError(f"{column}: empty (all ten coordinates are required)")
                if not _is_number(text) or not math.isfinite(float(text)):
                    raise LandmarkCSVError(f"{column}: {text!r} is not a finite number")
                row[name] = float(text)
            rows.append(row)
    if not rows:
        raise LandmarkCSVError(f"{path}: no landmark rows")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[_NUMERIC] = frame[_NUMERIC].astype(np.float64)
    return frame


def read_landmark_file(path: str | os.PathLike, fmt: str = "auto") -> pd.DataFrame:
    """Any landmark file of :data:`FORMATS` (``auto``: decided by :func:`detect_format`) as a COLUMNS frame."""
    try:
        if fmt == "auto":
            fmt = detect_format(path)
        if fmt == "srlrfr":
            return read_landmarks_csv(path)
        if fmt in ("headerless", "header"):
            return read_positional_csv(path, header=fmt == "header")
    except (csv.Error, UnicodeDecodeError) as exc:  # a binary file, or a field over csv's size limit
        raise LandmarkCSVError(f"{path}: not a landmark CSV text file ({exc})") from None
    raise ValueError(f"unknown landmark file format {fmt!r}; expected 'auto' or one of {list(FORMATS)}")


def landmarks_array(df: pd.DataFrame, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, 2) float64 landmarks for ``ids`` (NaN where not ok) and the (N,) ok mask.

    Every id must have a row; a missing one is an error (the landmark step did
    not see that image), not a silent 'no face'.
    """
    index = pd.Index(df["image_id"])
    if not index.is_unique:
        raise ValueError("landmark table has duplicate image_id values")
    pos = index.get_indexer(list(ids))
    if (pos < 0).any():
        missing = [i for i, p in zip(ids, pos) if p < 0]
        raise KeyError(f"{len(missing)} image id(s) have no landmark row, e.g. {missing[:5]}")
    sub = df.iloc[pos]
    status = sub["status"].fillna("ok").to_numpy() if "status" in sub else np.full(len(sub), "ok")
    points = np.array(sub[LANDMARK_COLUMNS], dtype=np.float64).reshape(-1, 5, 2)
    ok = (status == "ok") & np.isfinite(points).all(axis=(1, 2))
    points[~ok] = np.nan
    return points, ok
