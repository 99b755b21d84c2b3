"""XQLFW (Cross-Quality LFW; Knoche, Hörmann, Rigoll 2021): LFW's protocol on pairs of very
different quality.

The release (srlrfr.data.sources) holds identity folders named as LFW's
(``<Name>/<Name>_0001.jpg``: 250x250 originals, some synthetically degraded, in
xqlfw.zip; 112x112 MTCNN crops in xqlfw_aligned_112.zip), ``xqlfw_pairs.txt`` in
LFW's pairs format (10 sets of 300 same + 300 different pairs) and
``xqlfw_scores.txt`` (a header ``ID Num Score``, then ``<Name> <number> <score>``,
the authors' image quality score in [0, 1]).

Protocol here: both images are used as published. Each image goes through the
same landmarks and align steps as LFW (both releases: the crops of
xqlfw_aligned_112 are detected again and warped onto the FNet's geometry like
any image). The pair's lower-quality image (lower score) becomes the probe, the
``right`` column that evaluation degrades and restores; without a scores file
the file's order is kept. So the full-resolution row is XQLFW as published
(the FNet alone), and each low-resolution row further reduces the lower-quality
image by the factor and restores it with the method.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_csv, write_json
from ..registry import DATASETS
from . import sources
from .base import IMAGES_CSV, PAIRS_CSV, DatasetSpec
from .download import file_sha256
from .fetch import resolve_xqlfw_file, resolve_xqlfw_images
from .lfw import PairsError, assign_folds, check_inside, lfw_image_id, parse_pairs

SUMMARY_JSON = "summary.json"


def read_scores(path: str | Path) -> dict[str, float]:
    """``xqlfw_scores.txt`` as {image_id: score}; the header line (``ID Num Score``) is optional."""
    path = Path(path)
    scores: dict[str, float] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields or (lineno == 1 and fields == ["ID", "Num", "Score"]):
            continue
        try:
            name, number, score = fields
            scores[lfw_image_id(name, int(number))] = float(score)
        except ValueError:
            raise PairsError(f"{path}:{lineno}: expected '<Name> <number> <score>' (xqlfw_scores.txt), "
                             f"got {line!r}") from None
    if not scores:
        raise PairsError(f"{path}: no quality scores listed")
    return scores


def order_by_quality(pairs: pd.DataFrame, scores: dict[str, float] | None) -> tuple[pd.DataFrame, int]:
    """Put each pair's lower-quality image on the right (the probe); return (pairs, pairs swapped)."""
    pairs = pairs.copy()
    if scores is None:
        pairs["quality_left"] = pairs["quality_right"] = math.nan
        return pairs, 0
    missing = sorted({i for i in pd.concat([pairs["left"], pairs["right"]]) if i not in scores})
    if missing:
        raise PairsError(f"the quality scores have no entry for {len(missing)} image(s) of the pairs "
                         f"(e.g. {', '.join(missing[:5])}); is it the xqlfw_scores.txt of this release?")
    ql, qr = pairs["left"].map(scores).to_numpy(), pairs["right"].map(scores).to_numpy()
    swap = ql < qr  # ties keep the file's order
    left = np.where(swap, pairs["right"], pairs["left"])
    pairs["right"] = np.where(swap, pairs["left"], pairs["right"])
    pairs["left"] = left
    pairs["quality_left"], pairs["quality_right"] = np.maximum(ql, qr), np.minimum(ql, qr)
    return pairs, int(swap.sum())


def ingest_xqlfw(images_root: str | Path, pairs_path: str | Path, folds: int, out_dir: str | Path, *,
                 scores_path: str | Path | None = None, variant: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write images.csv (the images the pairs use), pairs.csv (LFW's columns plus both
    quality scores) and summary.json (sources and their sha256)."""
    images_root = Path(images_root).resolve()
    pairs, sets, n = parse_pairs(pairs_path)
    pairs["fold"] = assign_folds(pairs, sets, n, folds)
    pairs.insert(0, "pair", range(len(pairs)))
    check_inside(pairs, images_root, pairs_path)
    pairs, swapped = order_by_quality(pairs, read_scores(scores_path) if scores_path else None)
    used = pd.unique(pd.concat([pairs["left"], pairs["right"]], ignore_index=True))
    missing = [i for i in used if not (images_root / i).is_file()]
    if missing:
        raise PairsError(f"{pairs_path} names {len(missing)} image(s) not under {images_root}: "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Is data.xqlfw.images "
                         f"the XQLFW release that goes with these pairs?")
    index = pd.DataFrame({"image_id": used, "path": [str(images_root / i) for i in used],
                          "identity": [i.split("/")[0] for i in used]})
    write_csv(Path(out_dir) / IMAGES_CSV, index)
    write_csv(Path(out_dir) / PAIRS_CSV,
              pairs[["pair", "fold", "label", "left", "right", "quality_left", "quality_right"]])
    write_json(Path(out_dir) / SUMMARY_JSON, {
        "variant": variant, "images": str(images_root), "pairs": str(pairs_path),
        "pairs_sha256": file_sha256(pairs_path), "scores": str(scores_path) if scores_path else None,
        "scores_sha256": file_sha256(scores_path) if scores_path else None, "n_pairs": len(pairs),
        "n_images": len(index), "probe": "lower quality score" if scores_path else "second image of each line",
        "swapped": swapped})
    print(f"xqlfw: {len(pairs)} pairs over {len(index)} images from {images_root}; probe = "
          + (f"the lower-quality image ({swapped} pairs swapped)" if scores_path else "the second image (no scores)"))
    return index, pairs


def _ingest(cfg: dict, out_dir: Path) -> None:
    src, cache = cfg["data"]["xqlfw"], Path(cfg["data"]["cache"]) / "xqlfw"
    images = resolve_xqlfw_images(src["images"], cache, variant=src["variant"])
    pairs = resolve_xqlfw_file(src["pairs"], cache, sources.XQLFW_PAIRS, "data.xqlfw.pairs")
    scores = resolve_xqlfw_file(src["scores"], cache, sources.XQLFW_SCORES, "data.xqlfw.scores")
    ingest_xqlfw(images, pairs, cfg["evaluate"]["folds"], out_dir, scores_path=scores, variant=src["variant"])


DATASETS.register("xqlfw", DatasetSpec("xqlfw", "verification", _ingest,
                                       ("data.xqlfw", "data.cache", "evaluate.folds")))
