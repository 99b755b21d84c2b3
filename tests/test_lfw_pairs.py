"""Official-format pairs parsing, fold assignment and missing-image errors."""
from pathlib import Path

import numpy as np
import pytest

from srlrfr.data.lfw import PairsError, assign_folds, ingest_lfw, parse_pairs


def write_pairs(path: Path, sets: int, n: int) -> None:
    lines = [f"{sets}\t{n}"]
    for s in range(sets):
        lines += [f"P{s}_{i}\t1\t2" for i in range(n)]
        lines += [f"P{s}_{i}\t1\tQ{s}_{i}\t3" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def test_parse_and_official_folds(tmp_path):
    write_pairs(tmp_path / "p.txt", 10, 3)
    pairs, sets, n = parse_pairs(tmp_path / "p.txt")
    assert (sets, n, len(pairs)) == (10, 3, 60)
    folds = assign_folds(pairs, sets, n, 10).to_numpy()
    # Official file: folds are the consecutive blocks of 2n pairs.
    assert np.array_equal(folds, np.repeat(np.arange(10), 6))
    assert pairs.loc[0, "left"] == "P0_0/P0_0_0001.jpg" and pairs.loc[3, "right"] == "Q0_0/Q0_0_0003.jpg"
    assert list(pairs["label"][:6]) == [1, 1, 1, 0, 0, 0]


def test_single_set_split_keeps_classes_balanced(tmp_path):
    write_pairs(tmp_path / "p.txt", 1, 300)
    pairs, sets, n = parse_pairs(tmp_path / "p.txt")
    folds = assign_folds(pairs, sets, n, 10)
    counts = pairs.assign(fold=folds).groupby(["fold", "label"]).size()
    assert (counts == 30).all() and len(counts) == 20


def test_bad_lines_named(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("1\t1\nA\t1\t2\nA\t1\tB\n")
    with pytest.raises(PairsError, match=r"p.txt:3: expected a different-person"):
        parse_pairs(p)
    p.write_text("1\t2\nA\t1\t2\n")
    with pytest.raises(PairsError, match="header promises"):
        parse_pairs(p)
    write_pairs(p, 3, 2)
    with pytest.raises(PairsError, match="multiple"):
        assign_folds(*parse_pairs(p), 4)


def test_missing_images_reported(tmp_path):
    write_pairs(tmp_path / "p.txt", 1, 1)
    (tmp_path / "img" / "P0_0").mkdir(parents=True)
    (tmp_path / "img" / "P0_0" / "P0_0_0001.jpg").write_bytes(b"x")
    with pytest.raises(PairsError, match=r"names 2 image\(s\) not under"):
        ingest_lfw(tmp_path / "img", tmp_path / "p.txt", 1, tmp_path / "index")
    assert not (tmp_path / "index").exists()


def test_ingest_shared_fold(shared_data, tmp_path):
    index, pairs = ingest_lfw(shared_data / "lfw-fold1" / "images", shared_data / "lfw-fold1" / "pairs.txt",
                              10, tmp_path / "index")
    assert len(pairs) == 600 and pairs["label"].sum() == 300
    assert set(pairs["left"]) | set(pairs["right"]) == set(index["image_id"])
    assert all(Path(p).is_file() for p in index["path"])
