"""The table shape, the full-resolution cell rule and stable DVC metric names."""
import json
import math

import numpy as np
import pandas as pd

from srlrfr.report.tables import accuracy_table, collect, dvc_metrics, fold_table


def write_metrics(tmp_path, method, res, acc):
    d = tmp_path / method / res
    d.mkdir(parents=True)
    m = {"fnet": "sphereface20", "method": method, "resolution": res, "acc_mean": acc, "acc_std": 1.0,
         "folds": [0, 1], "fold_acc": [acc - 1, acc + 1], "fold_thresholds": [0.25, 0.5],
         "auc": 0.9, "eer": 0.1, "n_pairs": 600,
         "tar_at_far": {"1e-2": {"tar": 0.5, "n_negative": 300}}}
    if method != "hr":
        m["restoration"] = {"psnr_y": 20.0, "ssim_y": 0.5, "psnr_rgb": 19.0, "ssim_rgb": 0.4}
    (d / "metrics.json").write_text(json.dumps(m))
    score = np.random.default_rng(int(acc * 100)).uniform(0, 1, 600)  # the significance step reads them
    pd.DataFrame({"pair": range(600), "fold": np.repeat([0, 1], 300), "label": np.tile([1, 0], 300),
                  "score": score}).to_csv(d / "scores.csv", index=False)
    return d / "metrics.json"


def test_table_and_metrics(tmp_path):
    files = [write_metrics(tmp_path, "hr", "112x96", 99.0)]
    for i, method in enumerate(["bicubic", "bilinear_authors", "edsr_lambda0.5"]):
        for j, res in enumerate(["7x6", "28x24", "14x12"]):
            files.append(write_metrics(tmp_path, method, res, 60.0 + 10 * i + j))
    summary = collect(files)
    table = accuracy_table(summary)
    assert list(table.columns[:7]) == ["dataset", "fnet", "method", "7x6", "14x12", "28x24", "112x96"]
    row = table.set_index("method")
    assert row.loc["bicubic", "112x96"] == 99.0 and row.loc["bilinear_authors", "112x96"] == 99.0
    assert math.isnan(row.loc["edsr_lambda0.5", "112x96"])  # no full-resolution SR cell, as in the paper
    assert row.loc["edsr_lambda0.5", "14x12"] == 82.0 and row.loc["bicubic", "7x6_std"] == 1.0
    metrics = dvc_metrics(summary, 0.5)
    assert metrics["acc"]["7x6"] == {"bicubic": 60.0, "bilinear_authors": 70.0, "edsr": 80.0}
    assert metrics["acc"]["112x96"] == {"hr": 99.0} and metrics["lambda"] == 0.5
    assert summary.loc[summary["method"] == "bicubic", "tar_far_1e-2"].iloc[0] == 0.5
    folds = fold_table(files)
    assert len(folds) == 2 * len(files)
    first = folds[(folds["method"] == "bicubic") & (folds["resolution"] == "7x6")]
    assert first["accuracy"].tolist() == [59.0, 61.0] and first["threshold"].tolist() == [0.25, 0.5]


def test_two_srnets_and_a_degradation(tmp_path):
    """Each SRNet trained with the experiment's lambda is a metric under its own name; under a
    degradation model the paper (plain probes) is not compared cell by cell."""
    from srlrfr.steps.aggregate import aggregate
    files = [write_metrics(tmp_path, "hr", "112x96", 99.0)]
    for i, method in enumerate(["bicubic", "edsr_lambda0", "edsr_lambda0.5", "imdn_lambda0", "imdn_lambda0.5"]):
        files.append(write_metrics(tmp_path, method, "7x6", 60.0 + i))
    table = aggregate(files, tmp_path / "plain", lam=0.5)
    assert set(table["method"]) == {"bicubic", "edsr_lambda0", "edsr_lambda0.5", "imdn_lambda0", "imdn_lambda0.5"}
    metrics = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert metrics["acc"]["7x6"] == {"bicubic": 60.0, "edsr": 62.0, "imdn": 64.0}
    assert "| sphereface20 | edsr_lambda0.5 | 7x6 |" in (tmp_path / "plain" / "paper_comparison.md").read_text()
    aggregate(files, tmp_path / "jpeg", lam=0.5, degradation={"type": "down_jpeg", "quality": 40})
    note, significance = (tmp_path / "jpeg" / "paper_comparison.md").read_text().split("## Paired significance")
    assert "'down_jpeg' (quality 40)" in note and "|" not in note
    assert "| lfw | sphereface20 | 7x6 | edsr_lambda0.5 | bicubic |" in significance
    sig = pd.read_csv(tmp_path / "jpeg" / "significance.csv")
    assert len(sig) == 10 and set(sig["resolution"]) == {"7x6"}  # 5 methods at 7x6: 10 pairs; hr has no partner
    assert json.loads((tmp_path / "jpeg" / "metrics.json").read_text()) == metrics  # same names, same cells
    p = metrics["p_vs_bicubic"]["7x6"]  # McNemar's p against bicubic, by metric name (lambda 0.5's SRNets)
    assert set(p) == {"edsr", "imdn"} and p["edsr"] == round(
        sig[(sig["method_a"] == "edsr_lambda0.5") & (sig["method_b"] == "bicubic")]["p_mcnemar"].item(), 6)
