"""Paper table comparison, figures (size and non-blank content) and the offline HTML report."""
from __future__ import annotations

import base64
import math
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from srlrfr.methods import authors_method, sr_method
from srlrfr.report.html import write_report
from srlrfr.report.paper import PAPER, compare_to_paper, comparison_markdown, paper_row_for
from srlrfr.report.plots import plot_accuracy_vs_resolution, plot_face_grid, plot_roc, plot_training_curves
from srlrfr.report.steps import read_jobs, step_table
from srlrfr.report.tables import SUMMARY_COLUMNS, summary_row

RES = ["112x96", "7x6", "28x24", "14x12"]  # deliberately unordered


def _summary() -> pd.DataFrame:
    rows = []
    for m, base in (("bilinear_authors", 60.0), ("bicubic", 62.0), ("edsr_lambda0.5", 85.0),
                    ("authors_edsr_lambda0", 74.0)):
        for k, res in enumerate(RES):
            rows.append(summary_row("sphereface20", m, res,
                                    {"acc_mean": base + 3 * k, "acc_std": 1.5, "auc": 0.9, "eer": 0.1,
                                     "n_pairs": 6000, "tar_at_far": {"1e-2": {"tar": 0.5, "n_negative": 3000},
                                                                     "1e-3": {"tar": 0.3, "n_negative": 3000}}}))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _png_stats(path) -> tuple[int, int, float]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} is not a readable PNG"
    return img.shape[1], img.shape[0], float(img.astype(np.float64).var())


def test_method_names_and_paper_rows():
    assert sr_method("edsr", 0) == "edsr_lambda0" and sr_method("edsr", 0.50) == "edsr_lambda0.5"
    assert authors_method("edsr_lambda0.5") == "authors_edsr_lambda0.5"
    assert authors_method("edsr_baseline") == "authors_edsr_lambda0"
    assert paper_row_for("bilinear_authors")[0] == "bicubic_authors"
    assert paper_row_for("authors_edsr_lambda0.50")[0] == "edsr_lambda0.5"
    assert paper_row_for("edsr_lambda0")[0] == "edsr_lambda0"
    assert paper_row_for("nearest")[0] is None


def test_compare_to_paper_cells_and_diff():
    cmp = compare_to_paper(_summary())
    row = cmp[(cmp.method == "bilinear_authors") & (cmp.resolution == "7x6")].iloc[0]
    assert row.paper == 59.03 and row.ours == 63.0 and row["diff"] == pytest.approx(63.0 - 59.03)
    # EDSR rows have no 112x96 cell in the paper
    assert not ((cmp.method == "edsr_lambda0.5") & (cmp.resolution == "112x96")).any()
    lam0 = cmp[(cmp.method == "authors_edsr_lambda0") & (cmp.resolution == "14x12")].iloc[0]
    assert lam0.paper == PAPER[("sphereface20", "edsr_lambda0")]["14x12"] == 92.25
    assert len(cmp) == 4 + 4 + 3 + 3
    first = cmp[cmp.method == "bilinear_authors"].resolution.tolist()
    assert first == ["7x6", "14x12", "28x24", "112x96"]  # ordered small -> large
    md = comparison_markdown(cmp)
    assert "| sphereface20 | bilinear_authors | 7x6 |" in md and "+3.97" in md and "bilinear" in md


def test_compare_to_paper_rejects_fractions():
    df = _summary().assign(acc_mean=0.9)
    with pytest.raises(ValueError, match="fractions"):
        compare_to_paper(df)


def test_summary_row_nan_where_not_applicable():
    row = summary_row("sphereface20", "bicubic", "112x96", restoration={"psnr_y": None, "ssim_y": 1.0,
                                                                       "psnr_rgb": None, "ssim_rgb": 1.0})
    assert math.isnan(row["acc_mean"]) and math.isnan(row["psnr_y"]) and row["ssim_y"] == 1.0


def test_accuracy_plot(tmp_path):
    out = plot_accuracy_vs_resolution(_summary(), tmp_path / "acc.png")
    w, h, var = _png_stats(out)
    assert (w, h) == (900, 500) and var > 100
    two = pd.concat([_summary(), _summary().assign(fnet="dlib_resnet34")])
    w, h, _ = _png_stats(plot_accuracy_vs_resolution(two, tmp_path / "acc2.png", paper=False))
    assert (w, h) == (900, 500)
    three = pd.concat([two, _summary().assign(fnet="third")])
    assert _png_stats(plot_accuracy_vs_resolution(three, tmp_path / "acc3.png"))[:2] == (1350, 500)


def test_roc_plot(tmp_path):
    rng = np.random.default_rng(0)
    frames = {}
    for name, sep in (("bicubic", 0.2), ("edsr_lambda0.5", 0.6)):
        labels = np.repeat([1, 0], 300)
        frames[name] = pd.DataFrame({"label": labels, "score": rng.normal(labels * sep, 0.2)})
    w, h, var = _png_stats(plot_roc(frames, tmp_path / "roc.png", "7x6"))
    assert (w, h) == (600, 500) and var > 100


def test_face_grid(tmp_path):
    rng = np.random.default_rng(1)
    k = 3
    rows = [("probe 7x6", rng.integers(0, 256, (k, 7, 6, 3), dtype=np.uint8)),
            ("bicubic", rng.integers(0, 256, (k, 112, 96, 3), dtype=np.uint8)),
            ("edsr_lambda0.5", [rng.integers(0, 256, (112, 96, 3), dtype=np.uint8) for _ in range(k)]),
            ("ground truth", rng.integers(0, 256, (k, 112, 96, 3), dtype=np.uint8))]
    w, h, var = _png_stats(plot_face_grid(rows, tmp_path / "faces.png"))
    # 160 px label column + 120 px per face; rows 120 * 112 / 96 = 140 px each. Within
    # 1 px: matplotlib before 3.11.2 rounds the fractional inches x dpi down (519 px).
    assert abs(w - (160 + 120 * k)) <= 1 and abs(h - 4 * 140) <= 1 and var > 100
    with pytest.raises(ValueError, match="same non-zero number"):
        plot_face_grid([("a", rows[0][1]), ("b", rows[1][1][:2])], tmp_path / "bad.png")


def test_training_curves(tmp_path):
    steps = np.arange(0, 1000, 50)
    logs = {f"lambda={lam:g}": pd.DataFrame({"step": steps, "lr": 1e-4, "loss_pixel": 1 / (1 + steps / 100),
                                             "loss_identity": 0.5 / (1 + steps / 300),
                                             "loss_total": 1 / (1 + steps / 100) + lam * 0.5 / (1 + steps / 300)})
            for lam in (0, 0.5)}
    w, h, var = _png_stats(plot_training_curves(logs, tmp_path / "train.png"))
    assert (w, h) == (1500, 450) and var > 100
    with pytest.raises(ValueError, match="loss_identity"):
        plot_training_curves({"bad": logs["lambda=0"].drop(columns="loss_identity")}, tmp_path / "x.png")


def test_html_report_is_self_contained(tmp_path):
    fig = plot_accuracy_vs_resolution(_summary(), tmp_path / "acc.png")
    cmp = compare_to_paper(_summary())
    out = write_report(tmp_path / "report" / "index.html", title="LFW <low-res> λ study",
                       tables={"summary": _summary(), "paper": cmp, "note": "bilinear <not> bicubic"},
                       figures={"accuracy vs resolution": fig},
                       params={"seed": 0, "lambdas": [0, 0.5], "pairs": "pairs.txt"})
    page = out.read_text()
    assert not re.search(r"https?://", page)  # nothing fetched from the network
    assert "<link" not in page and "<script" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 and base64.b64decode(uris[0]) == fig.read_bytes()
    assert "<td>bilinear_authors</td>" in page and "<th>diff</th>" in page
    assert "<p>bilinear &lt;not&gt; bicubic</p>" in page
    assert "&lt;low-res&gt;" in page and "&#955;" in page  # escaped, ASCII-safe
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]  # no temp file left behind


def test_html_report_missing_figure(tmp_path):
    with pytest.raises(FileNotFoundError, match="roc"):
        write_report(tmp_path / "r.html", title="t", tables={}, figures={"roc": tmp_path / "nope.png"},
                     params={})
    assert not (tmp_path / "r.html").exists()


def _bench(path, seconds, cpu, rss):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n")
    return path


def test_step_table_from_benchmark_files(tmp_path):
    root = tmp_path / "logs" / "benchmarks"
    files = [_bench(root / "evaluate" / "dlib_resnet34" / "bicubic" / "40x40.tsv", 3.0, 5.5, 300.0),
             _bench(root / "evaluate" / "dlib_resnet34" / "edsr_lambda0.5" / "10x10.tsv", 5.0, 9.0, "NA"),
             _bench(root / "aggregate.tsv", 2.0, 1.0, 120.5)]
    jobs = read_jobs(files)
    assert list(jobs["job"]) == ["dlib_resnet34/bicubic/40x40", "dlib_resnet34/edsr_lambda0.5/10x10", ""]
    steps = step_table(jobs).set_index("step")
    assert list(steps.index) == ["evaluate", "aggregate"]  # slowest first
    ev = steps.loc["evaluate"]
    assert (ev["jobs"], ev["seconds"], ev["longest_seconds"], ev["cpu_seconds"], ev["max_rss_mb"]) == \
        (2, 8.0, 5.0, 14.5, 300.0)  # an NA sample does not hide the other job's peak
    assert steps["share_pct"].tolist() == [80.0, 20.0]


def test_step_table_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="under a 'benchmarks' folder"):
        read_jobs([_bench(tmp_path / "logs" / "evaluate.tsv", 1, 1, 1)])
    bad = tmp_path / "logs" / "benchmarks" / "align" / "lfw.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("")
    with pytest.raises(ValueError, match=r"lfw\.tsv: not a Snakemake benchmark file"):
        read_jobs([bad])
    assert step_table(read_jobs([])).empty
