"""Similarity fits (cp2tform and forward), 5-point alignment, landmark CSV validation, align -> re-detect on LFW."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from srlrfr.face.align import FITS, align_face, cp2tform_transform, similarity_transform
from srlrfr.face.detect import choose_face, detect_landmarks
from srlrfr.face.landmarks_io import (
    LANDMARK_COLUMNS,
    LandmarkCSVError,
    detect_format,
    landmarks_array,
    read_landmark_file,
    read_landmarks_csv,
)
from srlrfr.face.mtcnn import MTCNN
from srlrfr.geometry import get_geometry
from srlrfr.steps.align import align
from srlrfr.storage import AlignedSet

GEO = get_geometry("sphereface_112x96")


def random_similarity(rng, max_angle: float = np.pi) -> np.ndarray:
    angle, scale = rng.uniform(-max_angle, max_angle), rng.uniform(0.2, 5)
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, rng.uniform(-50, 50)], [s, c, rng.uniform(-50, 50)]])


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ matrix[:, :2].T + matrix[:, 2]


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Independent closed form (Umeyama 1991): SVD of the cross-covariance, det(R) = +1."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(xd.T @ xs / len(src))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / xs.var(0).sum()
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def sse(matrix, src, dst) -> float:
    return float(((apply(matrix, src) - dst) ** 2).sum())


def test_similarity_recovers_exact_transform():
    rng = np.random.default_rng(0)
    for _ in range(20):
        true = random_similarity(rng)
        src = rng.uniform(0, 250, (5, 2))
        np.testing.assert_allclose(similarity_transform(src, apply(true, src)), true, atol=1e-9)


def test_similarity_is_least_squares_optimal_with_noise():
    rng = np.random.default_rng(1)
    for _ in range(20):
        src = rng.uniform(0, 250, (5, 2))
        dst = apply(random_similarity(rng), src) + rng.normal(0, 3, (5, 2))
        fit = similarity_transform(src, dst)
        np.testing.assert_allclose(fit, umeyama(src, dst), atol=1e-8)
        assert np.isclose(fit[0, 0], fit[1, 1]) and np.isclose(fit[0, 1], -fit[1, 0])  # a similarity
        best = sse(fit, src, dst)
        for _ in range(50):  # no nearby similarity does better
            a, b = fit[0, 0], fit[1, 0]
            da, db, tx, ty = rng.normal(0, 1e-3, 4)
            other = np.array([[a + da, -(b + db), fit[0, 2] + tx], [b + db, a + da, fit[1, 2] + ty]])
            assert sse(other, src, dst) >= best


def test_similarity_never_reflects():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, (5, 2))
    mirrored = src * [-1, 1]
    fit = similarity_transform(src, mirrored)
    assert np.linalg.det(fit[:, :2]) >= 0
    np.testing.assert_allclose(fit, umeyama(src, mirrored), atol=1e-8)


def inverse_fit_by_normal_equations(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """cp2tform's answer derived independently: the 4x4 normal equations of the
    least-squares similarity ref -> img (u = a x - b y + tx, v = b x + a y + ty),
    solved, then that similarity inverted in closed form."""
    x, y, u, v, n = ref[:, 0], ref[:, 1], img[:, 0], img[:, 1], len(ref)
    sx, sy, r2 = x.sum(), y.sum(), (x * x + y * y).sum()
    normal = np.array([[r2, 0, sx, sy],       # d/da
                       [0, r2, -sy, sx],      # d/db
                       [sx, -sy, n, 0],       # d/dtx
                       [sy, sx, 0, n]])       # d/dty
    rhs = np.array([(u * x + v * y).sum(), (v * x - u * y).sum(), u.sum(), v.sum()])
    a, b, tx, ty = np.linalg.solve(normal, rhs)
    k = a * a + b * b  # inverse of [[a, -b], [b, a]] is [[a, b], [-b, a]] / k
    return np.array([[a / k, b / k, -(a * tx + b * ty) / k], [-b / k, a / k, (b * tx - a * ty) / k]])


def test_cp2tform_matches_independent_inverse_fit_on_noisy_points():
    rng = np.random.default_rng(5)
    ref = GEO.reference_points()
    for _ in range(50):
        img = apply(random_similarity(rng), ref) + rng.normal(0, 4, (5, 2))
        fit = cp2tform_transform(img, ref)
        np.testing.assert_allclose(fit, inverse_fit_by_normal_equations(img, ref), atol=1e-6, rtol=0)
        assert np.isclose(fit[0, 0], fit[1, 1]) and np.isclose(fit[0, 1], -fit[1, 0])  # a similarity
        # the other direction's least-squares fit is a different transform on noisy points
        assert np.abs(fit - similarity_transform(img, ref)).max() > 1e-4
    # noise-free: both fits are the exact transform
    true = random_similarity(rng)
    src = rng.uniform(0, 250, (5, 2))
    for fit in FITS.values():
        np.testing.assert_allclose(fit(src, apply(true, src)), true, atol=1e-9)


def test_align_face_fit_is_selectable_and_defaults_to_cp2tform():
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
    pts = GEO.reference_points() * 2 + 20 + rng.normal(0, 3, (5, 2))  # a face twice the crop, noisy points
    by_hand = cv2.warpAffine(img, inverse_fit_by_normal_equations(pts, GEO.reference_points()), (96, 112),
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT).astype(int)
    assert np.abs(align_face(img, pts, GEO) - by_hand).max() <= 1  # same matrix up to float rounding
    assert np.abs(align_face(img, pts, GEO, fit="forward") - by_hand).max() > 50
    with pytest.raises(ValueError, match="unknown alignment fit 'matlab'"):
        align_face(img, pts, GEO, fit="matlab")


def test_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        similarity_transform(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        cp2tform_transform(np.ones((5, 2)), GEO.reference_points())


def _dot_image(rng, size=(240, 200), max_angle: float = np.pi):
    """Image with 5 coloured dots at a random similarity of the reference points."""
    to_image = random_similarity(rng, max_angle)
    to_image[:, :2] *= 2.0 / np.sqrt(abs(np.linalg.det(to_image[:, :2])))  # face ~2x the crop
    pts = apply(to_image, GEO.reference_points())
    pts += np.array([size[1], size[0]]) / 2 - pts.mean(0)
    img = np.zeros((*size, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for p, col in zip(pts, colours):
        cv2.circle(img, (int(round(p[0] * 16)), int(round(p[1] * 16))), 5 * 16, col, -1, cv2.LINE_AA, 4)
    return img, pts, colours


def test_align_face_puts_landmarks_on_reference():
    rng = np.random.default_rng(3)
    for _ in range(5):
        img, pts, colours = _dot_image(rng)
        crop = align_face(img, pts, GEO)
        assert crop.shape == (112, 96, 3) and crop.dtype == np.uint8
        for ref, col in zip(GEO.reference_points(), colours):
            weight = np.all(np.abs(crop.astype(int) - col) < 60, axis=2).astype(float)
            ys, xs = np.nonzero(weight)
            assert len(xs) > 5
            np.testing.assert_allclose([xs.mean(), ys.mean()], ref, atol=0.35)


def _write(tmp_path, text, name="lm.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


HEADER = "image_id," + ",".join(LANDMARK_COLUMNS)
ROW = ",".join(str(v) for v in range(10))


@pytest.mark.parametrize("body, message", [
    ("image_id,lex,ley\na,1,2\n", r"line 1 \(header\): missing column"),
    (f"{HEADER}\na,{ROW}\nb,1,2\n", r"line 3: 3 fields, expected 11"),
    (f"{HEADER}\na,{ROW}\nb,{ROW.replace('4', 'x')}\n", r"line 3, column 'nx': 'x' is not a number"),
    (f"{HEADER}\na,{ROW}\nb,{ROW}\na,{ROW}\n", r"line 4, column 'image_id': duplicate 'a' \(first on line 2\)"),
    (f"{HEADER},status\na,{ROW},maybe\n", r"line 2, column 'status': 'maybe'"),
    (f"{HEADER}\na,{ROW.replace('9', '')}\n", r"line 2, column 'rmy': empty, but status is 'ok'"),
    (f"{HEADER}\na,{ROW.replace('9', 'nan')}\n", r"line 2, column 'rmy': 'nan' is not a finite"),
    ("", "empty file"),
])
def test_landmark_csv_errors_name_file_line_column(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(LandmarkCSVError, match=message) as err:
        read_landmarks_csv(path)
    assert str(path) in str(err.value)


def test_user_csv_defaults_and_array(tmp_path):
    path = _write(tmp_path, f"{HEADER}\nb,{ROW}\na,{','.join(str(v + 1) for v in range(10))}\n")
    df = read_landmarks_csv(path)
    assert df["status"].tolist() == ["ok", "ok"] and df["score"].isna().all()
    pts, ok = landmarks_array(df, ["a", "b"])
    assert pts.shape == (2, 5, 2) and pts.dtype == np.float64 and ok.all()
    np.testing.assert_array_equal(pts[1].reshape(-1), np.arange(10))
    np.testing.assert_array_equal(pts[0, 2], [5, 6])  # nose of 'a'
    with pytest.raises(KeyError, match="no landmark row.*'zz'"):
        landmarks_array(df, ["a", "zz"])


def _synthetic_items(tmp_path, rng):
    items, rows = [], []
    for k in range(3):
        img, pts, _ = _dot_image(rng, max_angle=np.pi / 3)  # upright: the align step refuses upside-down points
        path = tmp_path / f"img{k}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        items.append((f"img{k}", str(path)))
        rows.append({"image_id": f"img{k}", "status": "ok", **dict(zip(LANDMARK_COLUMNS, pts.reshape(-1)))})
    rows[1] = {"image_id": "img1", "status": "no_face"}
    items.append(("lost", str(tmp_path / "lost.png")))  # landmarks say ok, file is gone
    rows.append({"image_id": "lost", "status": "ok", **dict(zip(LANDMARK_COLUMNS, range(10)))})
    return items, pd.DataFrame(rows)


def align_items(tmp_path, items, df, out, **kw) -> AlignedSet:
    """The align step on (image_id, path) items and a landmark table."""
    pd.DataFrame({"image_id": [i for i, _ in items], "path": [p for _, p in items]}).to_csv(
        tmp_path / "images.csv", index=False)
    df.to_csv(tmp_path / "lm.csv", index=False)
    align(tmp_path / "images.csv", tmp_path / "lm.csv", "sphereface_112x96", out, **kw)
    return AlignedSet(out)


@pytest.mark.parametrize("policy", ["center", "exclude"])
def test_align_no_face_policies(tmp_path, policy):
    items, df = _synthetic_items(tmp_path, np.random.default_rng(4))
    out = tmp_path / "out" / "aligned"
    aligned = align_items(tmp_path, items, df, out, no_face=policy)
    images = np.load(out / "images.npy")
    assert images.shape == (4, 112, 96, 3) and images.dtype == np.uint8
    assert aligned.ids.tolist() == ["img0", "img1", "img2", "lost"]
    assert aligned.ok.tolist() == [True, False, True, False]
    assert aligned.faces["status"].tolist() == ["ok", "no_face", "ok", "unreadable"]
    assert not images[3].any()  # unreadable: black placeholder
    pts = df[LANDMARK_COLUMNS].to_numpy(float).reshape(-1, 5, 2)
    used = aligned.faces[LANDMARK_COLUMNS].to_numpy(float).reshape(-1, 5, 2)
    if policy == "exclude":
        assert not images[1].any()
    else:  # fallback = mean relative landmarks of the ok images (all 240x200 here)
        np.testing.assert_allclose(used[1], (pts[0] + pts[2]) / 2, atol=1e-4)
        assert images[1].any()
    with pytest.raises(ValueError, match="no_face must be one of"):
        align_items(tmp_path, items, df, tmp_path / "other", no_face="drop")
    assert not (tmp_path / "other").exists()


def test_real_lfw_align_then_redetect(shared_data, tmp_path):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    files = sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg"))[5::13][:60]
    items = [(f.stem, str(f)) for f in files]
    df = detect_landmarks(items, tmp_path / "lm.csv")
    assert (df["status"] == "ok").all(), df.loc[df.status != "ok", "image_id"].tolist()
    aligned = align_items(tmp_path, items, read_landmarks_csv(tmp_path / "lm.csv"), tmp_path / "aligned")
    assert aligned.ok.all()
    crops = list(aligned.images.read())
    dets = MTCNN().detect(crops)
    eye_err = []
    for image_id, crop, d in zip(aligned.ids, crops, dets):
        k = choose_face(d, crop.shape)
        assert k is not None, f"no face re-detected in the aligned crop of {image_id}"
        eye_err.append(np.linalg.norm(d.landmarks[k][:2] - GEO.reference_points()[:2], axis=1))
    assert np.mean(eye_err) <= 2.0


# The authors' two files, in their exact layouts (values made up, precision as theirs).
AUTHORS_LFW = ("AJ_Cook/AJ_Cook_0001.jpg,102.31299591064453,116.0447769165039,145.43927001953125,"
               "109.51300048828125,117.12474060058594,135.09945678710938,109.48954772949219,159.13238525390625,"
               "148.7501983642578,154.57907104492188\n"
               "Aaron_Peirsol/Aaron_Peirsol_0002.jpg,105.29,113.42,146.66,115.09,128.62,140.0,105.8,156.83,144.08,"
               "156.89\n")
AUTHORS_CELEBA = ("name,lex,ley,rex,rey,nx,ny,lmx,lmy,rmx,rmy\n"
                  "000001.jpg,165.5,184.25,244.0,176.0,196.75,249.0,194.0,271.5,266.0,260.25\n"
                  "000003.jpg,217,212,295,213,260,257,230,300,288,297\n")


def test_authors_layouts_parse(tmp_path):
    lfw = read_landmark_file(_write(tmp_path, AUTHORS_LFW, "LFW.csv"))
    assert detect_format(tmp_path / "LFW.csv") == "headerless"
    assert lfw["image_id"].tolist() == ["AJ_Cook/AJ_Cook_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg"]
    pts, ok = landmarks_array(lfw, ["AJ_Cook/AJ_Cook_0001.jpg"])
    assert ok.all() and (lfw["status"] == "ok").all()
    np.testing.assert_array_equal(pts[0, 0], [102.31299591064453, 116.0447769165039])   # left eye
    np.testing.assert_array_equal(pts[0, 4], [148.7501983642578, 154.57907104492188])   # right mouth corner
    celeba = read_landmark_file(_write(tmp_path, AUTHORS_CELEBA, "celeba.csv"), "header")
    assert detect_format(tmp_path / "celeba.csv") == "header"
    assert celeba["image_id"].tolist() == ["000001.jpg", "000003.jpg"]  # header row skipped, names unused
    np.testing.assert_array_equal(landmarks_array(celeba, ["000003.jpg"])[0][0, 2], [260, 257])  # nose
    own = _write(tmp_path, f"{HEADER}\na,{ROW}\n", "own.csv")
    assert detect_format(own) == "srlrfr" and read_landmark_file(own)["lex"].tolist() == [0]


@pytest.mark.parametrize("body, fmt, message", [
    (AUTHORS_LFW + "Bob/Bob_0001.jpg,1,2,3\n", "auto", r"line 3: 4 fields, expected 11"),
    (AUTHORS_LFW.replace("145.43927001953125", "abc"), "auto", r"line 1, column 4 \(rex\): 'abc' is not a finite"),
    (AUTHORS_LFW.replace(",148.7501983642578", ","), "auto", r"line 1, column 10 \(rmx\): empty"),
    (AUTHORS_LFW + AUTHORS_LFW.splitlines(True)[0], "auto", r"line 3, column 1 \(image\): duplicate 'AJ_Cook"),
    (AUTHORS_LFW, "header", r"line 1: expected a header row, found coordinates"),
    (AUTHORS_CELEBA.replace("000003.jpg", ""), "auto", r"line 3, column 1 \(image\): empty"),
    ("a,b,c\n", "auto", r"line 1: 3 fields; expected srlrfr's CSV"),
    ("\n", "auto", "empty file"),
])
def test_authors_layout_errors_name_file_line_column(tmp_path, body, fmt, message):
    path = _write(tmp_path, body)
    with pytest.raises(LandmarkCSVError, match=message) as err:
        read_landmark_file(path, fmt)
    assert str(path) in str(err.value)
