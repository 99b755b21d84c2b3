"""Rule landmarks: 5-point landmarks per indexed image (MTCNN, or a given CSV) + the no-face report."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_csv

NAME = "landmarks"
HELP = "detect (MTCNN) or import 5-point landmarks"
OUTPUTS_TOGETHER = True  # all outputs appear at once, or none (srlrfr.cli)


def landmarks(index_csv, out_csv, report_csv, *, source: str = "detect", device: str = "auto",
              batch_size: int = 16, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7),
              corrupt: str = "exclude") -> pd.DataFrame:
    index = pd.read_csv(index_csv)
    if source == "detect":
        from ..device import resolve_device
        from ..face.detect import detect_landmarks
        dev = str(resolve_device(device))
        df = detect_landmarks(list(zip(index["image_id"], index["path"])), out_csv, device=dev,
                              batch_size=batch_size, min_face_size=min_face_size, thresholds=tuple(thresholds),
                              corrupt=corrupt)
    else:
        from ..face.landmarks_io import read_landmarks_csv
        given = read_landmarks_csv(source)
        missing = sorted(set(index["image_id"]) - set(given["image_id"]))
        if missing:
            raise ValueError(f"landmark CSV {source} has no row for {len(missing)} indexed image(s), "
                             f"e.g. {missing[:3]}")
        df = given.set_index("image_id").loc[index["image_id"]].reset_index()
        write_csv(out_csv, df)
    from ..face.detect import failures
    failed = failures(df)
    write_csv(report_csv, failed)
    ok = len(df) - len(failed)
    counts = failed["status"].value_counts()
    causes = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("no_face", "corrupt", "unreadable"))
    print(f"landmarks: {ok}/{len(df)} images with a face ({100 * ok / max(len(df), 1):.2f}%); "
          f"{len(failed)} listed in {Path(report_csv)} ({causes})")
    for row in failed[failed["status"] != "no_face"].head(10).itertuples():
        print(f"  {row.status}: {row.path or row.image_id}")
    return df


def add_arguments(p) -> None:
    p.add_argument("dataset")
    p.add_argument("--index", required=True, help="the dataset's images.csv")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True, help="CSV listing images without a usable face")


def main(args, cfg) -> None:
    a = cfg["align"]
    landmarks(args.index, args.out, args.report, source=a["landmarks"][args.dataset], device=a["device"],
              batch_size=a["batch_size"], min_face_size=a["min_face_size"], thresholds=a["thresholds"],
              corrupt=a["corrupt"])
