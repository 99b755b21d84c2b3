"""The face-folder training set: any folder or zip of images, recursively, no labels; no-face, corrupt and
grey images go through the same landmarks and alignment as CelebA, and training counts what it drops."""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from srlrfr.data.faces import ingest_faces, resolve_faces
from srlrfr.steps.ingest import ingest
from srlrfr.training.pyramid import PyramidData

N_FACES = 6


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory, shared_data: Path) -> Path:
    """Six real UTKFace chips in nested folders (one of them grey), a blank image, a truncated JPEG,
    a text file and a link that leads out of the folder."""
    root = tmp_path_factory.mktemp("faces") / "my_faces"
    chips = sorted((shared_data / "utkface-16k" / "images").glob("*.jpg"))[:N_FACES]
    for i, chip in enumerate(chips):
        sub = root / f"batch{i % 2}" / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        if i == 1:  # a one-channel PNG
            cv2.imwrite(str(sub / "grey.PNG"), cv2.imread(str(chip), cv2.IMREAD_GRAYSCALE))
        else:
            (sub / chip.name).write_bytes(chip.read_bytes())
    cv2.imwrite(str(root / "blank.jpg"), np.full((200, 200, 3), 128, np.uint8))   # no face
    whole = chips[0].read_bytes()
    (root / "batch1" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])     # corrupt
    (root / "notes.txt").write_text("not an image")
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "lfw_test_face.jpg").write_bytes(whole)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape.jpg").symlink_to(outside / "lfw_test_face.jpg")
    return root


def test_ingest_nested_folder(face_folder: Path, tmp_path: Path):
    index = ingest_faces(face_folder, tmp_path)
    assert len(index) == N_FACES + 2  # the faces, the blank and the truncated file; no text, no links
    assert (index["identity"] == -1).all()
    assert any("/deep/" in i for i in index["image_id"]) and "batch1/grey.PNG" in set(index["image_id"])
    assert not any("escape" in i or "lfw_test_face" in i for i in index["image_id"])
    assert all(Path(p).resolve().is_relative_to(face_folder.resolve()) for p in index["path"])
    subset = ingest_faces(face_folder, tmp_path / "sub", max_images=3)
    assert len(subset) == 3 and set(subset["image_id"]) <= set(index["image_id"])
    assert subset.equals(ingest_faces(face_folder, tmp_path / "sub2", max_images=3))  # the same subset again


def test_zip_is_extracted_into_the_cache(face_folder: Path, tmp_path: Path):
    archive = tmp_path / "my_faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(face_folder.rglob("*")):
            if p.is_file() and not p.is_symlink() and "escape" not in p.name:
                zf.write(p, p.relative_to(face_folder.parent).as_posix())
    root = resolve_faces(str(archive), tmp_path / "cache")
    index = ingest_faces(root, tmp_path / "index")
    assert len(index) == N_FACES + 2
    with pytest.raises(FileNotFoundError, match="data.faces.images"):
        resolve_faces(str(tmp_path / "nothing_here"), tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="no download"):
        resolve_faces("download", tmp_path / "cache")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        ingest_faces(empty, tmp_path / "index2")


def test_no_face_and_corrupt_are_excluded_and_counted(face_folder: Path, tmp_path: Path, capsys):
    from srlrfr.config import validate
    from srlrfr.steps.align import align
    from srlrfr.steps.landmarks import LandmarkOptions, landmarks
    cfg = validate({"data": {"faces": {"images": str(face_folder)}, "cache": str(tmp_path / "cache")},
                    "train": {"dataset": "faces"}})
    ingest("faces", cfg, tmp_path / "index")
    lm = landmarks(tmp_path / "index" / "images.csv", tmp_path / "lm.csv", tmp_path / "no_face.csv",
                   options=LandmarkOptions(dataset="faces", training=True, device="cpu"))
    status = dict(zip(lm["image_id"], lm["status"]))
    assert status["blank.jpg"] == "no_face" and status["batch1/truncated.jpg"] == "corrupt"
    assert status["batch1/grey.PNG"] == "ok"  # a grey image is read as three equal channels
    align(tmp_path / "index" / "images.csv", tmp_path / "lm.csv", "sphereface_112x96", tmp_path / "aligned")
    faces = pd.read_csv(tmp_path / "aligned" / "faces.csv")
    assert len(faces) == N_FACES + 2
    crops = np.load(tmp_path / "aligned" / "images.npy")
    data = PyramidData.from_images(crops, "cv2_bicubic", usable=np.flatnonzero(faces["landmark_ok"]))
    assert data.dropped == 2 and len(data.usable) == sum(s == "ok" for s in status.values()) == N_FACES
