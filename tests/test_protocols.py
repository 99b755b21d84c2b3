"""Protocols beyond the paper's, on tiny hand-made features: lr_vs_lr pairing, the resolution
matrix, the identification split, ranks, rank-k and CMC, their tables and DVC metric names."""
import json

import numpy as np
import pandas as pd
import pytest

from srlrfr import config as params
from srlrfr.metrics.identification import cmc, identification_report, identification_split, probe_ranks
from srlrfr.metrics.protocols import Features, pair_report, resolution_matrix
from srlrfr.report.tables import accuracy_table, collect, dvc_metrics


def test_split_one_gallery_image_per_identity_with_two_usable_images():
    images = pd.DataFrame({
        "image_id": ["C/C_0002", "A/A_0003", "B/B_0001", "A/A_0001", "D/D_0001", "C/C_0001", "A/A_0002",
                     "D/D_0002"],
        "identity": ["C", "A", "B", "A", "D", "C", "A", "D"]})
    usable = np.array([True, True, True, True, True, True, True, False])  # D keeps one usable image
    split = identification_split(images, usable)
    assert split.to_dict("list") == {
        "image_id": ["A/A_0001", "A/A_0002", "A/A_0003", "C/C_0001", "C/C_0002"],
        "identity": ["A", "A", "A", "C", "C"],
        "role": ["gallery", "probe", "probe", "gallery", "probe"]}
    shuffled = identification_split(images.iloc[::-1].reset_index(drop=True), usable[::-1])
    pd.testing.assert_frame_equal(shuffled, split)  # deterministic whatever the index order
    assert len(identification_split(images)) == 7  # all usable: D has two images now


def test_ranks_cmc_and_report_by_hand():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    ids = np.array(["x", "y", "z"])
    probes = np.array([[1.0, 0.1],   # x: closest to x -> rank 1
                       [0.1, 1.0],   # x: y first, then x -> rank 2
                       [0.2, 1.0]])  # z: y, x, then z -> rank 3
    ranks = probe_ranks(probes, ["x", "x", "z"], gallery, ids)
    assert ranks.tolist() == [1, 2, 3]
    np.testing.assert_allclose(cmc(ranks, 3), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(cmc(np.array([1, 2, 2, 5]), 5), [0.25, 0.75, 0.75, 0.75, 1.0])
    report = identification_report(ranks, n_gallery=3, max_rank=20)
    assert report["rank1"] == pytest.approx(100 / 3) and report["rank5"] == 100.0  # gallery of 3: all by rank 3
    assert len(report["cmc"]) == 3 and report["n_probes"] == 3 and report["n_gallery"] == 3
    # Ties count against the probe: a constant feature ranks every probe last, not first.
    flat = probe_ranks(np.ones((2, 2)), ["x", "y"], np.ones((3, 2)), ids)
    assert flat.tolist() == [3, 3]
    with pytest.raises(ValueError, match="not in the gallery"):
        probe_ranks(probes[:1], ["w"], gallery, ids)
    with pytest.raises(ValueError, match="one entry per identity"):
        probe_ranks(probes[:1], ["x"], gallery, ["x", "x", "z"])


def _pairs(n=20):
    """n pairs L<i>/R<i>, genuine for even i, in two folds holding both kinds."""
    return pd.DataFrame({"pair": range(n), "fold": np.arange(n) // 2 % 2, "label": (np.arange(n) % 2 == 0).astype(int),
                         "left": [f"L{i}" for i in range(n)], "right": [f"R{i}" for i in range(n)]})


def test_lr_vs_lr_scores_the_restored_first_image():
    """Restored first images match their pair exactly (genuine) or oppositely (impostor): lr_vs_lr is
    perfect, while the full-resolution first images (random) are not."""
    pairs = _pairs()
    rng = np.random.default_rng(0)
    right = rng.normal(size=(20, 8))
    sign = np.where(pairs["label"] == 1, 1.0, -1.0)[:, None]
    restored = Features([f"R{i}" for i in range(20)] + [f"L{i}" for i in range(20)],
                        np.vstack([right, right * sign]))
    full_left = Features([f"L{i}" for i in range(20)], rng.normal(size=(20, 8)))
    lr = pair_report(pairs, restored, restored)
    hr = pair_report(pairs, full_left, restored)
    assert lr["acc_mean"] == 100.0 and lr["n_pairs"] == 20
    assert hr["acc_mean"] < 90.0
    with pytest.raises(KeyError, match="'R0' has no feature"):  # right images are never looked up in the gallery
        pair_report(pairs, full_left, full_left)


def test_resolution_matrix_cells():
    """Full resolution separates the pairs; at 7x6 every face has the same feature (all scores equal:
    50% on balanced pairs). Rows are the first image's resolution."""
    pairs = _pairs()
    rng = np.random.default_rng(1)
    right = rng.normal(size=(20, 8))
    sign = np.where(pairs["label"] == 1, 1.0, -1.0)[:, None]
    ids = [f"R{i}" for i in range(20)] + [f"L{i}" for i in range(20)]
    full = Features(ids, np.vstack([right, right * sign]))
    low = Features(ids, np.ones((40, 8)))
    table = resolution_matrix(pairs, {"7x6": low, "112x96": full})
    cell = table.set_index(["gallery", "probe"])["acc_mean"]
    assert len(table) == 4
    assert cell["112x96", "112x96"] == 100.0 and cell["7x6", "7x6"] == 50.0
    assert cell["112x96", "7x6"] == pair_report(pairs, full, low)["acc_mean"]
    assert cell["7x6", "112x96"] == pair_report(pairs, low, full)["acc_mean"]


def _write(tmp_path, method, res, acc, lr_acc=None, rank1=None):
    d = tmp_path / method / res
    d.mkdir(parents=True)
    m = {"fnet": "sphereface20", "method": method, "resolution": res, "acc_mean": acc, "acc_std": 1.0,
         "folds": [0, 1], "fold_acc": [acc - 1, acc + 1], "fold_thresholds": [0.25, 0.5],
         "auc": 0.9, "eer": 0.1, "n_pairs": 600}
    if lr_acc is not None:
        m["lr_vs_lr"] = {"acc_mean": lr_acc, "acc_std": 2.0, "auc": 0.8, "eer": 0.2}
    if rank1 is not None:
        m["identification"] = {"rank1": rank1, "rank5": rank1 + 10, "cmc": [rank1, rank1 + 10],
                               "n_probes": 372, "n_gallery": 163}
    (d / "metrics.json").write_text(json.dumps(m))
    return d / "metrics.json"


def test_tables_and_metric_names_per_protocol(tmp_path):
    plain = [_write(tmp_path / "a", "hr", "112x96", 99.0)]
    extra = [_write(tmp_path / "b", "hr", "112x96", 99.0, lr_acc=99.0, rank1=90.0)]
    for i, method in enumerate(["bicubic", "edsr_lambda0.5"]):
        plain.append(_write(tmp_path / "a", method, "7x6", 70.0 + i))
        extra.append(_write(tmp_path / "b", method, "7x6", 70.0 + i, lr_acc=60.0 + i, rank1=20.0 + i))
    paper = accuracy_table(collect(plain))
    assert "protocol" not in paper  # the default: the paper's table alone, as before
    summary = collect(extra)
    table = accuracy_table(summary)
    pd.testing.assert_frame_equal(table.iloc[:2, :-1], paper)  # the paper's rows first, unchanged
    assert table["protocol"].tolist() == ["hr_vs_lr"] * 2 + ["lr_vs_lr"] * 2 + ["identification_rank1"] * 2 \
        + ["identification_rank5"] * 2
    cell = table.set_index(["protocol", "method"])
    assert cell.loc[("lr_vs_lr", "edsr_lambda0.5"), "7x6"] == 61.0
    assert cell.loc[("lr_vs_lr", "bicubic"), "112x96"] == 99.0  # undegraded cell shared, as in the paper's table
    assert cell.loc[("identification_rank1", "bicubic"), "7x6"] == 20.0
    assert cell.loc[("identification_rank5", "edsr_lambda0.5"), "7x6"] == 31.0
    metrics = dvc_metrics(summary, 0.5)
    assert metrics["acc"] == dvc_metrics(collect(plain), 0.5)["acc"]
    assert metrics["lr_vs_lr"]["acc"]["7x6"] == {"bicubic": 60.0, "edsr": 61.0}
    assert metrics["identification"]["rank1"] == {"7x6": {"bicubic": 20.0, "edsr": 21.0}, "112x96": {"hr": 90.0}}
    assert set(dvc_metrics(collect(plain), 0.5)) == {"lambda", "acc", "std", "auc", "eer"}


def test_protocol_params_are_checked():
    with pytest.raises(params.ConfigError, match="evaluate.protocols"):
        params.validate({"evaluate": {"protocols": ["lr_vs_lr"]}})  # the paper's protocol always runs
    with pytest.raises(params.ConfigError, match="evaluate.matrix.method.*edsr_lambda0.5"):
        params.validate({"evaluate": {"matrix": {"method": "lanczos"}}})
    cfg = params.validate({"evaluate": {"matrix": {"method": "bicubic"}, "protocols": ["hr_vs_lr", "lr_vs_lr"]}})
    assert cfg["evaluate"]["identification"] == {"enabled": False, "max_rank": 20}


def _aligned(tmp_path, ids):
    folder = tmp_path / "aligned"
    folder.mkdir()
    np.save(folder / "images.npy", np.zeros((len(ids), 8, 8, 3), np.uint8))
    pd.DataFrame({"image_id": ids, "status": "ok", "landmark_ok": True, "points": ""}).to_csv(
        folder / "faces.csv", index=False)
    return folder


def test_evaluate_full_resolution_with_every_protocol(tmp_path):
    """The undegraded evaluation end to end on stored features (no FNet run): lr_vs_lr equals
    hr_vs_lr there, identification ranks the hand-made probes, features.npz holds every image."""
    from srlrfr.steps.evaluate import EvaluateInputs, EvaluateOptions, evaluate
    ids = ["a/a_1", "a/a_2", "b/b_1", "b/b_2", "b/b_3", "c/c_1"]
    feats = np.array([[1, 0, 0], [1, .2, 0], [0, 1, 0], [0, 1, .1], [1, .1, 0], [0, 0, 1]], np.float32)
    index = tmp_path / "index"
    index.mkdir()
    pd.DataFrame({"image_id": ids, "identity": [i.split("/")[0] for i in ids]}).to_csv(index / "images.csv")
    pairs = pd.DataFrame({"pair": range(4), "fold": [0, 0, 1, 1], "label": [1, 0, 1, 0],
                          "left": ["a/a_1", "a/a_1", "b/b_1", "b/b_1"], "right": ["a/a_2", "c/c_1", "b/b_2", "c/c_1"]})
    pairs.to_csv(index / "pairs.csv", index=False)
    aligned = _aligned(tmp_path, ids)
    np.savez(tmp_path / "hr.npz", features=feats, ids=np.array(ids))
    m = evaluate(EvaluateInputs(pairs_csv=index / "pairs.csv", aligned_dir=aligned, features_npz=tmp_path / "hr.npz"),
                 method="hr", resolution="8x8", out_dir=tmp_path / "out",
                 options=EvaluateOptions(fnet_name="dlib_resnet34", threshold_steps=101, examples=2,
                                         protocols=("hr_vs_lr", "lr_vs_lr"), identification=True))
    assert m["lr_vs_lr"]["acc_mean"] == m["acc_mean"]
    # probes a_2 (rank 1), b_2 (rank 1), b_3 (closest to a: rank 2); gallery a_1, b_1; c has one image
    ident = m["identification"]
    assert (ident["n_gallery"], ident["n_probes"]) == (2, 3)
    assert ident["rank1"] == pytest.approx(200 / 3) and ident["cmc"] == pytest.approx([200 / 3, 100.0])
    with np.load(tmp_path / "out" / "features.npz") as z:
        assert sorted(z["ids"].tolist()) == ["a/a_1", "a/a_2", "b/b_1", "b/b_2", "b/b_3", "c/c_1"]
        np.testing.assert_array_equal(z["features"][z["ids"].tolist().index("b/b_3")], feats[4])
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["identification"] == ident


def test_cmc_and_matrix_figures(tmp_path):
    import cv2

    from srlrfr.report.plots import plot_cmc, plot_resolution_matrix
    curves = {"112x96": {"hr": [90.0, 95.0, 97.0]}, "7x6": {"bicubic": [10.0, 20.0, 25.0], "edsr": [15.0, 25.0, 30.0]}}
    cmc_png = cv2.imread(str(plot_cmc(curves, tmp_path / "cmc.png", n_gallery=163)))
    assert cmc_png.shape[:2] == (450, 900) and cmc_png.std() > 10  # two panels: (1 + 4 * 2) x 4.5 inches
    cells = [{"method": "bicubic", "gallery": g, "probe": p, "acc_mean": 50.0 + 10 * i + 5 * j}
             for i, g in enumerate(["7x6", "112x96"]) for j, p in enumerate(["7x6", "112x96"])]
    heat = cv2.imread(str(plot_resolution_matrix(pd.DataFrame(cells), tmp_path / "matrix.png")))
    assert heat.shape[:2] == (500, 600) and heat.std() > 10
