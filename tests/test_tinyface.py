"""TinyFace ingest on a tiny synthetic copy in its exact layout (faces from the sample data)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from xqlfw_fixture import zip_folder

from srlrfr import cli
from srlrfr.data.tinyface import find_testing_set, ingest_tinyface, resolve_tinyface

# Testing_Set file -> identity (-1: distractor)
LAYOUT = {"Gallery_Match/1_1.jpg": 1, "Gallery_Match/2_1.jpg": 2, "Gallery_Match/3_1.jpg": 3,
          "Probe/1_2.jpg": 1, "Probe/1_3.jpg": 1, "Probe/2_2.jpg": 2,
          "Gallery_Distractor/0_12_aaa/0_12_aaa_img1.jpg": -1, "Gallery_Distractor/9_1_zzz_img3.jpg": -1}


def make_tinyface(dest: Path, shared_data: Path) -> Path:
    """``dest/tinyface/Testing_Set/...`` as tinyface.zip unpacks, with a Training_Set beside it."""
    faces = sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg"))
    testing = dest / "tinyface" / "Testing_Set"
    for face, rel in zip(faces, LAYOUT):
        (testing / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(face, testing / rel)
    (dest / "tinyface" / "Training_Set" / "7").mkdir(parents=True)
    shutil.copyfile(faces[-1], dest / "tinyface" / "Training_Set" / "7" / "7_1.jpg")
    return dest / "tinyface"


@pytest.fixture
def tiny(tmp_path, shared_data):
    return make_tinyface(tmp_path / "src", shared_data)


def test_roles_and_identities(tiny, tmp_path):
    index = ingest_tinyface(tiny, tmp_path / "index")
    got = dict(zip(index["image_id"], index["identity"]))
    assert got == LAYOUT
    assert index.groupby("role").size().to_dict() == {"distractor": 2, "gallery": 3, "probe": 3}
    assert all(Path(p).is_file() for p in index["path"])
    written = pd.read_csv(tmp_path / "index" / "images.csv")
    assert list(written.columns) == ["image_id", "path", "identity", "role"]
    summary = json.loads((tmp_path / "index" / "summary.json").read_text())
    assert summary["identities"] == 3 and summary["distractor"] == 2
    capped = ingest_tinyface(tiny, tmp_path / "capped", max_distractors=1)
    assert (capped["role"] == "distractor").sum() == 1


def test_any_level_of_the_copy_and_the_zip(tiny, tmp_path):
    testing = tiny / "Testing_Set"
    assert find_testing_set(tiny.parent) == find_testing_set(tiny) == find_testing_set(testing) == testing
    root = resolve_tinyface(str(zip_folder(tiny, tmp_path / "tinyface.zip")), tmp_path / "cache")
    assert find_testing_set(root) == tmp_path / "cache" / "tinyface" / "tinyface" / "Testing_Set"


def test_errors_name_the_cause(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="data.tinyface.source is None.*qmul-tinyface"):
        resolve_tinyface(None, tmp_path)
    with pytest.raises(FileNotFoundError, match="no TinyFace Testing_Set in"):
        find_testing_set(tmp_path)
    (tiny / "Testing_Set" / "Probe" / "5_1.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"probe identities \[5\] have no Gallery_Match image"):
        ingest_tinyface(tiny, tmp_path / "i1")
    (tiny / "Testing_Set" / "Probe" / "5_1.jpg").rename(tiny / "Testing_Set" / "Probe" / "face.jpg")
    with pytest.raises(ValueError, match="cannot read an identity from 'face.jpg'"):
        ingest_tinyface(tiny, tmp_path / "i2")


def test_ingest_step_from_the_cli(tiny, tmp_path, capsys):
    settings = json.dumps({"data": {"tinyface": {"source": str(tiny)}, "cache": str(tmp_path / "cache")}})
    assert cli.main(["ingest", "tinyface", "--settings", settings, "--out", str(tmp_path / "data/index/tinyface")]) == 0
    assert "3 gallery, 3 probe and 2 distractor images of 3 identities" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "data/index/tinyface/images.csv")) == 8
