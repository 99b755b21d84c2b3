"""A supplied landmark file (srlrfr's or the authors') replaces detection; failures are reported, never
dropped; points made for other copies of the images are caught."""
import numpy as np
import pandas as pd
import pytest
import torch

from srlrfr.steps.landmarks import LandmarkOptions
from srlrfr.steps.landmarks import landmarks as landmarks_step

COLS = ["lex", "ley", "rex", "rey", "nx", "ny", "lmx", "lmy", "rmx", "rmy"]
FACE = [30, 50, 66, 50, 48, 72, 34, 92, 63, 92]  # plausible points (images not on disk: bounds unchecked)


def test_supplied_csv_replaces_detection(tmp_path):
    pd.DataFrame({"image_id": ["a.jpg", "b.jpg"], "path": ["/x/a.jpg", "/x/b.jpg"], "identity": [1, 2]}) \
        .to_csv(tmp_path / "index.csv", index=False)
    given = pd.DataFrame([["b.jpg"] + FACE, ["a.jpg"] + [v + 10 for v in FACE],
                          ["extra.jpg"] + FACE], columns=["image_id"] + COLS)
    given.to_csv(tmp_path / "mine.csv", index=False)
    df = landmarks_step(tmp_path / "index.csv", tmp_path / "lm.csv", tmp_path / "noface.csv",
                        options=LandmarkOptions(source=str(tmp_path / "mine.csv")))
    assert df["image_id"].tolist() == ["a.jpg", "b.jpg"]  # index order, extra rows ignored
    assert df.loc[0, "lex"] == 40 and (df["status"] == "ok").all()
    assert pd.read_csv(tmp_path / "lm.csv")["image_id"].tolist() == ["a.jpg", "b.jpg"]
    assert len(pd.read_csv(tmp_path / "noface.csv")) == 0


def test_supplied_csv_missing_rows_named(tmp_path):
    pd.DataFrame({"image_id": ["a.jpg", "c.jpg"], "path": ["/x/a.jpg", "/x/c.jpg"], "identity": [1, 2]}) \
        .to_csv(tmp_path / "index.csv", index=False)
    pd.DataFrame([["a.jpg"] + list(range(10))], columns=["image_id"] + COLS).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match=r"no row for 1 indexed image.*c\.jpg"):
        landmarks_step(tmp_path / "index.csv", tmp_path / "lm.csv", tmp_path / "r.csv",
                       options=LandmarkOptions(source=str(tmp_path / "m.csv")))
    assert not (tmp_path / "lm.csv").exists()


# ---- the authors' files and the check against the images on disk

def _index(tmp_path, ids, paths=None) -> str:
    paths = paths or [f"/nowhere/{i}" for i in ids]
    pd.DataFrame({"image_id": ids, "path": paths, "identity": range(len(ids))}).to_csv(tmp_path / "index.csv",
                                                                                        index=False)
    return tmp_path / "index.csv"


def _headerless(path, ids, points) -> str:
    with open(path, "w") as fh:
        for i, p in zip(ids, points):
            fh.write(i + "," + ",".join(repr(float(v)) for v in np.ravel(p)) + "\n")
    return path


def test_authors_file_fetched_by_git_blob_and_read(tmp_path, monkeypatch):
    from test_download import Site, serve

    from srlrfr.data import sources
    from srlrfr.data.download import ChecksumError, git_blob_id
    from srlrfr.data.sources import Artefact
    ids = ["A/A_0001.jpg", "B/B_0002.jpg"]
    served = _headerless(tmp_path / "LFW.csv", ["Z/Z_0001.jpg", *ids], np.add(FACE, [[0], [10], [20]]))
    site = Site()
    site.files["/data/LFW.csv"] = served.read_bytes()
    with serve(site) as base:
        art = Artefact("LFW.csv", (f"{base}/data/LFW.csv",), "LFW.csv", git_blob=git_blob_id(served))
        monkeypatch.setitem(sources.AUTHORS_LANDMARKS, "lfw", (art, "headerless"))
        df = landmarks_step(_index(tmp_path, ids), tmp_path / "lm.csv", tmp_path / "r.csv",
                            options=LandmarkOptions(dataset="lfw", source="authors", cache=str(tmp_path / "cache"),
                                                    check="off"))
        assert (tmp_path / "cache" / "authors" / "LFW.csv").read_bytes() == served.read_bytes()
        bad = Artefact("LFW.csv", (f"{base}/data/LFW.csv",), "LFW.csv", git_blob="0" * 40)
        monkeypatch.setitem(sources.AUTHORS_LANDMARKS, "lfw", (bad, "headerless"))
        with pytest.raises(ChecksumError):
            landmarks_step(tmp_path / "index.csv", tmp_path / "lm2.csv", tmp_path / "r2.csv",
                           options=LandmarkOptions(dataset="lfw", source="authors", cache=str(tmp_path / "cache2"),
                                                   check="off"))
    assert df["image_id"].tolist() == ids and (df["status"] == "ok").all()  # index order; Z ignored
    np.testing.assert_array_equal(df.loc[1, COLS].to_numpy(float), np.add(FACE, 20))
    assert df["path"].tolist() == [f"/nowhere/{i}" for i in ids]


def test_pairs_image_missing_from_landmark_file_fails_naming_it(tmp_path):
    given = _headerless(tmp_path / "LFW.csv", ["A/A_0001.jpg"], [np.arange(10)])
    with pytest.raises(ValueError, match=r"no row for 1 indexed image\(s\) the pairs use: B/B_0002\.jpg"):
        landmarks_step(_index(tmp_path, ["A/A_0001.jpg", "B/B_0002.jpg"]), tmp_path / "lm.csv",
                       tmp_path / "r.csv", options=LandmarkOptions(dataset="lfw", source=str(given), check="off"))
    assert not (tmp_path / "lm.csv").exists()


def test_training_list_leaves_unlisted_images_out(tmp_path):
    given = tmp_path / "celeba_clean_landmarks.csv"
    given.write_text("name,a,b,c,d,e,f,g,h,i,j\n000001.jpg," + ",".join(map(str, FACE)) + "\n")
    df = landmarks_step(_index(tmp_path, ["000001.jpg", "000002.jpg"]), tmp_path / "lm.csv", tmp_path / "r.csv",
                        options=LandmarkOptions(dataset="celeba", source=str(given), training=True, check="off"))
    assert df["status"].tolist() == ["ok", "not_listed"]
    assert pd.read_csv(tmp_path / "r.csv")["image_id"].tolist() == ["000002.jpg"]
    with pytest.raises(ValueError, match="no row for any of the 1 indexed images"):
        landmarks_step(_index(tmp_path, ["000009.jpg"]), tmp_path / "lm.csv", tmp_path / "r.csv",
                       options=LandmarkOptions(dataset="celeba", source=str(given), training=True, check="off"))


@pytest.fixture(scope="module")
def lfw_sample(shared_data, tmp_path_factory):
    """20 deep-funneled LFW images and their MTCNN points (the stand-in for 'the right variant')."""
    from srlrfr.face.detect import detect_landmarks
    torch.set_num_threads(min(2, torch.get_num_threads()))
    files = sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg"))[3::40][:20]
    ids = [f"{f.parent.name}/{f.name}" for f in files]
    df = detect_landmarks(list(zip(ids, map(str, files))), tmp_path_factory.mktemp("lm") / "lm.csv")
    assert (df["status"] == "ok").all()
    return ids, [str(f) for f in files], df[COLS].to_numpy(float).reshape(-1, 5, 2)


def _moved(points, rng, shift_px, degrees):
    """Each image's points moved by its own similarity, as funneling moves the face (mean |shift| ~ shift_px)."""
    out = []
    for p in points:
        angle = np.deg2rad(rng.uniform(-degrees, degrees))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = p.mean(0)
        direction = rng.uniform(0, 2 * np.pi)
        out.append((p - centre) @ rot.T + centre + shift_px * np.array([np.cos(direction), np.sin(direction)]))
    return np.array(out)


def test_landmarks_of_another_lfw_variant_are_caught(lfw_sample, tmp_path, caplog):
    from srlrfr.face.landmark_check import LandmarkMismatch
    ids, paths, points = lfw_sample
    index = _index(tmp_path, ids, paths)
    rng = np.random.default_rng(0)
    # another MTCNN port on the same files (a common ~2 px offset, 1.2 px per-point spread) passes
    same = _headerless(tmp_path / "same.csv", ids, points + [2.0, -1.5] + rng.normal(0, 1.2, points.shape))
    df = landmarks_step(index, tmp_path / "lm.csv", tmp_path / "r.csv",
                        options=LandmarkOptions(dataset="lfw", source=str(same), device="cpu", min_face_size=40))
    assert (df["status"] == "ok").all()
    # points made for other crops of the same photos (per-image 4 px shift, up to 3 degrees) fail ...
    other = _headerless(tmp_path / "other.csv", ids, _moved(points, rng, 4.0, 3.0))
    with pytest.raises(LandmarkMismatch, match=r"do not fit the lfw images.*original lfw\.tgz.*deep-funneled"):
        landmarks_step(index, tmp_path / "lm2.csv", tmp_path / "r2.csv",
                       options=LandmarkOptions(dataset="lfw", source=str(other), device="cpu", min_face_size=40))
    assert not (tmp_path / "lm2.csv").exists()
    # ... or only warn, when asked
    df = landmarks_step(index, tmp_path / "lm3.csv", tmp_path / "r3.csv",
                        options=LandmarkOptions(dataset="lfw", source=str(other), device="cpu", min_face_size=40,
                                                check="warn"))
    assert len(df) == len(ids) and "do not fit the lfw images" in caplog.text


# ---- every row is checked for being a face's points at all

def _rolled(points, degrees):
    angle = np.deg2rad(degrees)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(0)
    return (points - centre) @ rot.T + centre


def test_implausible_rows_are_named():
    from srlrfr.face.landmark_check import implausible
    face = np.reshape(FACE, (5, 2)).astype(float)
    swapped = face[[1, 0, 2, 4, 3]]
    upside_down = face.copy()
    upside_down[:, 1] = 140 - upside_down[:, 1]
    nose_low = face.copy()
    nose_low[2, 1] = 100
    rows = [face, _rolled(face, 45), _rolled(face, -60), face * 1e6, -face, face * 0, face + 200, swapped,
            upside_down, nose_low, face * np.nan]
    reasons = implausible(np.array(rows), np.full((len(rows), 2), [96.0, 112.0]))
    assert reasons[:3] == ["", "", ""]  # upright and rolled faces pass
    expected = ["wider than the image", "outside the 96x112 image", "under 3 px", "outside the 96x112 image",
                "left eye not left", "mouth corners not below", "nose not between", "not finite"]
    assert [e in r for e, r in zip(expected, reasons[3:])] == [True] * len(expected), reasons
    # without the image's size, bounds are not checked, shape still is
    assert implausible(np.array([face * 1e6, -face])) == ["", "left eye not left of the right eye"]


def test_detected_rows_are_checked_too(tmp_path, monkeypatch):
    """A detector's implausible output is bad_landmarks like a given file's, listed with its reason."""
    import cv2

    from srlrfr.face import detect
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((112, 96, 3), np.uint8))
    index = _index(tmp_path, ["a.jpg", "b.jpg"], [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")])

    def fake(items, out_csv, **kw):
        df = pd.DataFrame([[i, p, "ok", *np.multiply(FACE, 1e6 if i == "b.jpg" else 1)] for i, p in items],
                          columns=["image_id", "path", "status", *COLS])
        df.to_csv(out_csv, index=False)
        return df
    monkeypatch.setattr(detect, "detect_landmarks", fake)
    df = landmarks_step(index, tmp_path / "lm.csv", tmp_path / "r.csv", options=LandmarkOptions(device="cpu"))
    assert df["status"].tolist() == ["ok", "bad_landmarks"]
    assert pd.read_csv(tmp_path / "lm.csv")["status"].tolist() == ["ok", "bad_landmarks"]
    report = pd.read_csv(tmp_path / "r.csv")
    assert report["image_id"].tolist() == ["b.jpg"] and "wider than the image" in report.loc[0, "reason"]


# ---- the common offset is bounded, and a mismatch names its likely cause

def test_agreement_bounds_the_offset_and_names_the_cause(lfw_sample):
    """Synthetic copies of the detected points: a port's 2 px offset passes; 10 px shifts, 1.25x and 0.5x
    sizes and per-image moves fail, each named as shifted, resized or another variant."""
    from srlrfr.face.landmark_check import agreement
    points = lfw_sample[2]
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1.2, points.shape)
    port = agreement(points + [2.0, -1.5] + noise, points, len(points))
    assert port.agrees, port.describe()
    cases = {"shifted": points + [10.0, 8.0] + noise, "resized": points * 1.25 + noise,
             "another variant": _moved(points, rng, 4.0, 3.0)}
    for cause, given in cases.items():
        result = agreement(given, points, len(points))
        assert not result.agrees and result.cause().startswith(cause), (cause, result.describe())
    half = agreement(points * 0.5, points, len(points))  # points of a half-size copy: a ~60 px offset
    assert np.hypot(*half.offset) > 50 and not half.agrees and half.cause().startswith("resized")


def test_shifted_images_fail_naming_the_shift(lfw_sample, tmp_path):
    """LFW.csv-like points on images shifted by (+10, +8) px fit the shape after the offset: refused anyway."""
    from srlrfr.face.landmark_check import LandmarkMismatch
    ids, paths, points = lfw_sample
    shifted = _headerless(tmp_path / "shifted.csv", ids, points + [10.0, 8.0])
    with pytest.raises(LandmarkMismatch, match=r"offset \(\+10\.\d\d, \+8\.\d\d\) px \(limit 4\.\d px\).*"
                                               r"Likely cause: shifted"):
        landmarks_step(_index(tmp_path, ids, paths), tmp_path / "lm.csv", tmp_path / "r.csv",
                       options=LandmarkOptions(dataset="lfw", source=str(shifted), device="cpu", min_face_size=40))
    assert not (tmp_path / "lm.csv").exists()
