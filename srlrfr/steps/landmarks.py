"""Rule landmarks: 5-point landmarks per indexed image (MTCNN, or a given file) + the no-face report.

A given file (``align.landmarks.<dataset>``: ``authors`` or a path) is read
in any layout of srlrfr.face.landmarks_io. Its rows for images outside the
index are ignored. An indexed image without a row fails the step for a
verification set (its pairs need it); for a training set the file is the
training list (the authors' CelebA list is their cleaned selection), so such
images are recorded as ``not_listed`` and never reach training. A sample of
the given points is then compared with MTCNN on the image files
(srlrfr.face.landmark_check), so points published for another copy of the
dataset (e.g. LFW.csv on deep-funneled LFW) are caught before alignment.

Every row, detected or given, is checked for being a face's points at all
(srlrfr.face.landmark_check.implausible: inside the image, a plausible eye
distance, eyes above nose above mouth, left left of right). A row that fails
gets status ``bad_landmarks``: listed with its reason in the report and
treated as no_face downstream (never aligned from its points, landmark_ok
False). A given file where most rows fail is the wrong file: it fails the
step like a mismatch (align.landmark_check).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_csv
from ..catalog import load_all
from ..data.fetch import resolve_landmarks
from ..face.landmark_check import (
    BAD_LANDMARKS,
    ON_MISMATCH,
    LandmarkMismatch,
    compare_with_detection,
    implausible,
    sample_rows,
)
from ..face.landmarks_io import LANDMARK_COLUMNS, read_landmark_file
from ..registry import DATASETS

NAME = "landmarks"
HELP = "detect (MTCNN) or import 5-point landmarks"
OUTPUTS_TOGETHER = True  # all outputs appear at once, or none (srlrfr.cli)

log = logging.getLogger(__name__)
# What a mismatch most likely means, per dataset.
MISMATCH_HINTS = {
    "lfw": ("The authors' LFW.csv belongs to the original lfw.tgz images (250x250), not to shifted, resized, "
            "funneled or deep-funneled copies. Point data.lfw.images at lfw.tgz (or 'download'), "
            "or set align.landmarks.lfw: detect."),
    "celeba": ("The authors' CelebA list is in pixels of the full-size in-the-wild images (img_celeba, "
               "data.celeba.images: in_the_wild); resized or aligned copies do not fit it. "
               "Use the original img_celeba files, or set align.landmarks.celeba: detect."),
}


def _given(index: pd.DataFrame, table: pd.DataFrame, source: str, *, training: bool) -> pd.DataFrame:
    """The file's rows in index order; unlisted images fail (verification) or are marked (training)."""
    ids = index["image_id"].astype(str)
    listed = set(table["image_id"])
    extra = len(listed - set(ids))
    if extra:
        print(f"landmarks: {extra} row(s) of {source} name images outside this dataset's index (ignored)")
    missing = [i for i in ids if i not in listed]
    if len(missing) == len(ids):
        raise ValueError(f"landmark file {source} has no row for any of the {len(ids)} indexed images "
                         f"(e.g. {missing[:3]}); is it the file for this dataset?")
    if missing and not training:
        raise ValueError(f"landmark file {source} has no row for {len(missing)} indexed image(s) the pairs "
                         f"use: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    rows = table.drop_duplicates("image_id").set_index("image_id")
    df = rows.reindex(ids).rename_axis("image_id").reset_index()
    df["path"] = index["path"].to_numpy()
    if missing:
        df.loc[df["image_id"].isin(missing), "status"] = "not_listed"
        print(f"landmarks: {len(missing)} indexed image(s) are not in {source}; recorded as not_listed "
              f"and left out of training")
    return df


MAX_BAD_SHARE = 0.5  # of a given file's rows failing the sanity check: the file is wrong, not a few rows


def mark_implausible(df: pd.DataFrame) -> dict[str, str]:
    """Check every ok row's points against its image's size (from the file's header); failing rows get
    status bad_landmarks in place. Returns {image_id: reason} of those."""
    # deferred: loads torch, torchvision, cv2, joblib
    from ..face.detect import image_size
    rows = np.flatnonzero(df["status"].to_numpy() == "ok")
    sizes = np.array([image_size(p) for p in df["path"].iloc[rows]], np.float64).reshape(-1, 2)
    reasons = implausible(df.iloc[rows][LANDMARK_COLUMNS].to_numpy(float), sizes)
    bad = [r for r, why in zip(rows, reasons) if why]
    df.loc[df.index[bad], "status"] = BAD_LANDMARKS
    return {str(df["image_id"].iloc[r]): why for r, why in zip(rows, reasons) if why}


def check_bad_share(bad: dict[str, str], checked: int, source: str, on_mismatch: str) -> None:
    """Most rows of a given file failing the sanity check: the file is for other images or scaled."""
    if on_mismatch == "off" or not checked or len(bad) <= MAX_BAD_SHARE * checked:
        return
    first = next(iter(bad.items()))
    message = (f"{len(bad)} of the {checked} rows of {source} for indexed images are not a face's landmarks "
               f"(e.g. {first[0]}: {first[1]}); is it the file for these images, in pixels of these files "
               f"(not scaled, not another crop)? (align.landmark_check: warn goes on, those rows left out.)")
    if on_mismatch == "fail":
        raise LandmarkMismatch(message)
    log.warning(message)


def check_given(df: pd.DataFrame, dataset: str, source: str, *, on_mismatch: str = "fail", device: str = "cpu",
                min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7)) -> None:
    """Compare a sample of given points with MTCNN on the same files (srlrfr.face.landmark_check)."""
    if on_mismatch not in ON_MISMATCH:
        raise ValueError(f"align.landmark_check must be one of {ON_MISMATCH}, got {on_mismatch!r}")
    if on_mismatch == "off":
        return
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    rows = sample_rows(len(ok))
    points = ok.loc[rows, LANDMARK_COLUMNS].to_numpy(float).reshape(-1, 5, 2)
    result = compare_with_detection(list(ok.loc[rows, "path"]), points, device=device,
                                    min_face_size=min_face_size, thresholds=thresholds)
    print(f"landmark check against MTCNN: {result.describe()}")
    if not result.conclusive:
        log.warning("landmark check of %s inconclusive: too few faces re-detected in the sample", source)
    elif not result.agrees:
        message = (f"the landmarks of {source} do not fit the {dataset} images on disk: {result.describe()}. "
                   f"Likely cause: {result.cause()}. "
                   + MISMATCH_HINTS.get(dataset, "Were they made for another copy of these images?")
                   + " (align.landmark_check: warn goes on anyway.)")
        if on_mismatch == "fail":
            raise LandmarkMismatch(message)
        log.warning(message)


@dataclass(frozen=True)
class LandmarkOptions:
    """How the landmarks of one dataset are found (params: align.*, data.cache).

    ``source``: 'detect' (MTCNN), 'authors' (their file for ``dataset``, fetched into ``cache``) or a
    file path; ``check``: align.landmark_check for a given file; ``training``: the dataset trains the
    SRNet (a given file is then its training list). The rest are MTCNN's settings.
    """
    dataset: str = ""
    source: str = "detect"
    cache: str = "data/downloads"
    check: str = "fail"
    training: bool = False
    device: str = "auto"
    batch_size: int = 16
    min_face_size: int = 20
    thresholds: tuple = (0.6, 0.7, 0.7)
    corrupt: str = "exclude"

    @classmethod
    def from_params(cls, cfg: dict, dataset: str) -> "LandmarkOptions":
        load_all()
        a = cfg["align"]
        return cls(dataset=dataset, source=a["landmarks"][dataset], cache=cfg["data"]["cache"],
                   check=a["landmark_check"], training=DATASETS.get(dataset).role == "training", device=a["device"],
                   batch_size=a["batch_size"], min_face_size=a["min_face_size"], thresholds=a["thresholds"],
                   corrupt=a["corrupt"])


def landmarks(index_csv, out_csv, report_csv, options: LandmarkOptions = LandmarkOptions()) -> pd.DataFrame:
    """The landmarks of every indexed image into ``out_csv``, the images without a usable face into ``report_csv``."""
    # deferred: loads torch
    from ..device import resolve_device
    index = pd.read_csv(index_csv)
    dev = str(resolve_device(options.device))
    if options.source == "detect":
        df, bad = _detected(index, out_csv, options, dev)
    else:
        df, bad = _from_file(index, out_csv, options, dev)
    _report_failures(df, bad, report_csv)
    return df


def _detected(index: pd.DataFrame, out_csv, opts: LandmarkOptions, dev: str) -> tuple[pd.DataFrame, dict]:
    # deferred: loads torch, torchvision, cv2, joblib
    from ..face.detect import detect_landmarks
    df = detect_landmarks(list(zip(index["image_id"], index["path"])), out_csv, device=dev,
                          batch_size=opts.batch_size, min_face_size=opts.min_face_size,
                          thresholds=tuple(opts.thresholds), corrupt=opts.corrupt)
    bad = mark_implausible(df)
    if bad:
        write_csv(out_csv, df)
    return df, bad


def _from_file(index: pd.DataFrame, out_csv, opts: LandmarkOptions, dev: str) -> tuple[pd.DataFrame, dict]:
    """A given file's points, checked for plausibility and against MTCNN before they are written."""
    path, layout = resolve_landmarks(opts.source, opts.dataset, Path(opts.cache) / "authors")
    df = _given(index, read_landmark_file(path, layout), str(path), training=opts.training)
    checked = int((df["status"] == "ok").sum())
    bad = mark_implausible(df)
    check_bad_share(bad, checked, str(path), opts.check)
    check_given(df, opts.dataset, str(path), on_mismatch=opts.check, device=dev, min_face_size=opts.min_face_size,
                thresholds=opts.thresholds)
    write_csv(out_csv, df)
    return df, bad


def _report_failures(df: pd.DataFrame, bad: dict, report_csv) -> None:
    # deferred: loads torch, torchvision, cv2, joblib
    from ..face.detect import failures
    failed = failures(df)
    failed["reason"] = [bad.get(str(i), "") for i in failed["image_id"]]
    write_csv(report_csv, failed)
    ok = len(df) - len(failed)
    counts = failed["status"].value_counts()
    causes = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("no_face", "corrupt", "unreadable", "bad_landmarks"))
    print(f"landmarks: {ok}/{len(df)} images with a face ({100 * ok / max(len(df), 1):.2f}%); "
          f"{len(failed)} listed in {Path(report_csv)} ({causes})")
    for row in failed[failed["status"] != "no_face"].head(10).itertuples():
        print(f"  {row.status}: {row.path or row.image_id}" + (f" ({row.reason})" if row.reason else ""))


def add_arguments(p) -> None:
    p.add_argument("dataset")
    p.add_argument("--index", required=True, help="the dataset's images.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True, help="CSV listing images without a usable face")


def main(args, cfg) -> None:
    landmarks(args.index, args.out, args.report, LandmarkOptions.from_params(cfg, args.dataset))
