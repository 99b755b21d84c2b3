"""XQLFW: resolving a local folder, archive or download (a local HTTP server), the ingest
(probe = the lower-quality image), and its own rows and DVC metrics; the real DAG on a
tiny synthetic copy is in test_datasets_dag.py."""
from __future__ import annotations

import json
import shutil
import warnings

import pandas as pd
import pytest
from test_download import Site, serve
from xqlfw_fixture import CLEAN, DEGRADED, TOP, make_xqlfw, zip_folder

from srlrfr import config
from srlrfr.data import fetch, sources
from srlrfr.data.lfw import PairsError
from srlrfr.data.sources import Artefact
from srlrfr.data.xqlfw import ingest_xqlfw, order_by_quality, read_scores
from srlrfr.report.tables import accuracy_table, collect, dvc_metrics


@pytest.fixture
def xq(tmp_path, shared_data):
    return make_xqlfw(tmp_path / "xqlfw", shared_data)


def test_ingest_puts_the_lower_quality_image_on_the_right(xq, tmp_path):
    images, pairs = ingest_xqlfw(xq["images"], xq["pairs"], 2, tmp_path / "index", scores_path=xq["scores"])
    assert len(pairs) == 12 and pairs["label"].tolist() == [1] * 6 + [0] * 6
    assert (pairs["quality_left"] == CLEAN).all() and (pairs["quality_right"] == DEGRADED).all()
    written = pd.read_csv(tmp_path / "index" / "pairs.csv")
    assert list(written.columns[:5]) == ["pair", "fold", "label", "left", "right"]
    assert sorted(written["fold"].value_counts().tolist()) == [6, 6]  # 2 folds, both classes in each
    summary = json.loads((tmp_path / "index" / "summary.json").read_text())
    assert summary["swapped"] == 6 and summary["n_images"] == len(images) == 18
    assert len(summary["pairs_sha256"]) == 64
    # the file's order lists the degraded image first in every odd pair: those were swapped
    raw = [ln.split() for ln in xq["pairs"].read_text().splitlines()[1:]]
    assert pairs.loc[1, "right"] == f"{raw[1][0]}/{raw[1][0]}_{int(raw[1][1]):04d}.jpg"


def test_without_scores_the_file_order_stays(xq, tmp_path):
    _, pairs = ingest_xqlfw(xq["images"], xq["pairs"], 2, tmp_path / "index")
    assert pairs["quality_right"].isna().all()
    assert json.loads((tmp_path / "index" / "summary.json").read_text())["swapped"] == 0
    first = xq["pairs"].read_text().splitlines()[1].split()
    assert pairs.loc[0, "left"] == f"{first[0]}/{first[0]}_{int(first[1]):04d}.jpg"


def test_scores_file_and_its_errors(xq, tmp_path):
    scores = read_scores(xq["scores"])
    assert set(scores.values()) == {CLEAN, DEGRADED} and len(scores) == 18
    bad = tmp_path / "bad.txt"
    bad.write_text("ID Num Score\nAbel_Pacheco 1\n")
    with pytest.raises(PairsError, match=r"bad.txt:2: expected '<Name> <number> <score>'"):
        read_scores(bad)
    pairs = pd.DataFrame({"left": ["A/A_0001.jpg"], "right": ["B/B_0001.jpg"]})
    with pytest.raises(PairsError, match="no entry for 1 image.*B/B_0001.jpg"):
        order_by_quality(pairs, {"A/A_0001.jpg": 0.5})
    shutil.rmtree(next(xq["images"].iterdir()))
    with pytest.raises(PairsError, match="not under .*Is data.xqlfw.images the XQLFW release"):
        ingest_xqlfw(xq["images"], xq["pairs"], 2, tmp_path / "index2")


def test_folder_parent_and_both_release_archives(xq, tmp_path):
    cache = tmp_path / "cache"
    assert fetch.resolve_xqlfw_images(xq["images"], cache) == xq["images"]
    assert fetch.resolve_xqlfw_images(xq["images"].parent, cache) == xq["images"]  # the top folder is found
    root = fetch.resolve_xqlfw_images(zip_folder(xq["images"], tmp_path / "xqlfw.zip"), cache)
    assert root == cache / "xqlfw" / TOP and len(list(root.glob("*/*.jpg"))) == 18
    aligned = tmp_path / "a" / "xqlfw_aligned_112"
    shutil.copytree(xq["images"], aligned)
    root = fetch.resolve_xqlfw_images(zip_folder(aligned, tmp_path / "xqlfw_aligned_112.zip"), cache,
                                      variant="aligned_112")
    assert root == cache / "xqlfw_aligned_112" / "xqlfw_aligned_112"
    assert fetch.resolve_xqlfw_file(xq["pairs"].parent, cache, sources.XQLFW_PAIRS, "k") == xq["pairs"]
    assert fetch.resolve_xqlfw_file(None, cache, sources.XQLFW_SCORES, "k") is None


def test_bad_sources_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere \(data.xqlfw.images\).*martlgap.github.io"):
        fetch.resolve_xqlfw_images(tmp_path / "nowhere", tmp_path)
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no face images in .*empty"):
        fetch.resolve_xqlfw_images(tmp_path / "empty", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no xqlfw_pairs.txt at .*\(data.xqlfw.pairs\)"):
        fetch.resolve_xqlfw_file(tmp_path, tmp_path, sources.XQLFW_PAIRS, "data.xqlfw.pairs")
    with pytest.raises(ValueError, match="data.xqlfw.variant"):
        fetch.resolve_xqlfw_images("download", tmp_path, variant="huge")


def test_download_resumes_and_records_what_it_got(xq, tmp_path, monkeypatch):
    """No checksum is published: the files are taken whole (length), with a warning giving their sha256."""
    from srlrfr.steps.ingest import ingest
    site = Site()
    site.files["/rel/xqlfw.zip"] = zip_folder(xq["images"], tmp_path / "served.zip").read_bytes()
    site.files["/rel/xqlfw_pairs.txt"] = xq["pairs"].read_bytes()
    site.files["/rel/xqlfw_scores.txt"] = xq["scores"].read_bytes()
    site.cut_first.add("/rel/xqlfw.zip")  # the first transfer breaks off half-way
    with serve(site) as base:
        monkeypatch.setitem(sources.XQLFW_VARIANTS, "original",
                            (Artefact("xqlfw.zip", (f"{base}/rel/xqlfw.zip",), "xqlfw.zip"), TOP))
        for name in ("XQLFW_PAIRS", "XQLFW_SCORES"):
            art = getattr(sources, name)
            monkeypatch.setattr(sources, name, Artefact(art.name, (f"{base}/rel/{art.filename}",), art.filename))
        cfg = config.validate({"data": {"cache": str(tmp_path / "cache")}, "evaluate": {"folds": 2}})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ingest("xqlfw", cfg, tmp_path / "index")
    said = " ".join(str(w.message) for w in caught)
    assert "xqlfw.zip: its publisher gives no checksum" in said and "sha256" in said
    ranges = [r for p, r in site.log if p == "/rel/xqlfw.zip"]
    assert ranges[0] is None and ranges[-1].startswith("bytes=")  # resumed, not restarted
    assert (tmp_path / "cache" / "xqlfw" / "xqlfw.zip").read_bytes() == site.files["/rel/xqlfw.zip"]
    assert len(pd.read_csv(tmp_path / "index" / "pairs.csv")) == 12


def test_rows_and_metric_names_per_dataset(tmp_path):
    """XQLFW's cells are rows of their own and DVC metrics under 'xqlfw'; LFW's keep their names."""
    files = []
    for ds, base in (("lfw", 90.0), ("xqlfw", 70.0)):
        for method, res, acc in (("hr", "112x96", base), ("bicubic", "7x6", base - 20)):
            d = tmp_path / ds / method / res
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({
                "dataset": ds, "fnet": "sphereface20", "method": method, "resolution": res, "acc_mean": acc,
                "acc_std": 1.0, "auc": 0.9, "eer": 0.1, "n_pairs": 12, "folds": [0], "fold_acc": [acc],
                "fold_thresholds": [0.3]}))
            files.append(d / "metrics.json")
    summary = collect(files)
    table = accuracy_table(summary).set_index(["dataset", "method"])
    assert table.loc[("xqlfw", "bicubic"), "7x6"] == 50.0 and table.loc[("xqlfw", "bicubic"), "112x96"] == 70.0
    assert table.loc[("lfw", "bicubic"), "112x96"] == 90.0
    metrics = dvc_metrics(summary, 0.5)
    assert metrics["acc"]["7x6"] == {"bicubic": 70.0} and metrics["acc"]["112x96"] == {"hr": 90.0}
    assert metrics["xqlfw"]["acc"] == {"7x6": {"bicubic": 50.0}, "112x96": {"hr": 70.0}}


def test_datasets_param():
    assert config.validate({})["evaluate"]["datasets"] == ["lfw"]
    assert config.validate({"evaluate": {"datasets": ["lfw", "xqlfw"]}})["data"]["xqlfw"]["variant"] == "original"
    with pytest.raises(config.ConfigError, match="evaluate.datasets.*lacks 'lfw'"):
        config.validate({"evaluate": {"datasets": ["xqlfw"]}})
    with pytest.raises(config.ConfigError, match="evaluate.datasets.1.*'tinyface' is not one of"):
        config.validate({"evaluate": {"datasets": ["lfw", "tinyface"]}})


def test_doctor_checks_the_sources(xq, tmp_path):
    """Preflight: local files found as the ingest finds them; a missing one fails naming its key;
    'download' plans the release URLs."""
    from srlrfr.doctor.base import FAIL, INFO, OK
    from srlrfr.doctor.inputs import Plan, check_xqlfw
    local = config.validate({"evaluate": {"datasets": ["lfw", "xqlfw"]}, "data": {"xqlfw": {
        "images": str(xq["images"].parent), "pairs": str(xq["pairs"]), "scores": None}}})
    checks = check_xqlfw(local, tmp_path, Plan())
    assert [c.status for c in checks] == [OK, OK] and "18 XQLFW images" in checks[0].detail
    local["data"]["xqlfw"]["pairs"] = str(tmp_path / "gone.txt")
    bad = check_xqlfw(local, tmp_path, Plan())[1]
    assert bad.status == FAIL and bad.name == "data.xqlfw.pairs" and "gone.txt" in bad.detail
    plan = Plan()
    checks = check_xqlfw(config.validate({}), tmp_path, plan)
    assert [c.status for c in checks] == [INFO] * 3
    assert [d.urls[0].rsplit("/", 1)[1] for d in plan.downloads] == ["xqlfw.zip", "xqlfw_pairs.txt",
                                                                     "xqlfw_scores.txt"]
    assert all(d.urls[0].startswith("https://github.com/Martlgap/xqlfw/releases/download/1.0/")
               for d in plan.downloads)


def test_doctor_reads_a_local_image_source_as_the_ingest_does(xq, tmp_path):
    """An archive is planned for extraction (not opened), a folder is scanned, anything else fails
    naming the key; one helper serves LFW and XQLFW."""
    import shutil

    from srlrfr.doctor.base import FAIL, OK
    from srlrfr.doctor.inputs import Plan, check_xqlfw

    def images_check(source) -> tuple:
        cfg = config.validate({"data": {"xqlfw": {"images": str(source), "pairs": str(xq["pairs"]),
                                                  "scores": None}}})
        plan = Plan()
        return check_xqlfw(cfg, tmp_path, plan)[0], plan

    archive = shutil.make_archive(str(tmp_path / "xq"), "zip", xq["images"].parent)
    check, plan = images_check(archive)
    assert check.status == OK and "XQLFW archive" in check.detail and "extracted into" in check.detail
    assert [d.what for d in plan.disk] == ["extract xq.zip"] and not (tmp_path / "data").exists()  # planned only
    (tmp_path / "notes.txt").write_text("not images")
    for source, says in ((tmp_path / "notes.txt", "neither a folder nor an archive"),
                         (tmp_path / "absent", "does not exist")):
        check, _ = images_check(source)
        assert check.status == FAIL and check.name == "data.xqlfw.images" and says in check.detail


def test_pairs_leaving_the_images_folder_are_refused(xq, tmp_path):
    """A name with '..' or a path, or an image that is a link out of the release's folder: file:line named."""
    lines = xq["pairs"].read_text().splitlines()
    name = lines[1].split()[0]
    bad = xq["pairs"].with_name("bad_pairs.txt")
    bad.write_text("\n".join([lines[0], lines[1].replace(name, f"../{name}", 1), *lines[2:]]) + "\n")
    with pytest.raises(PairsError, match=r"bad_pairs\.txt:2: person name '\.\./.*not a folder name"):
        ingest_xqlfw(xq["images"], bad, 2, tmp_path / "index1")
    image = xq["images"] / name / f"{name}_{int(lines[1].split()[1]):04d}.jpg"
    outside = tmp_path / "elsewhere.jpg"
    shutil.move(image, outside)
    image.symlink_to(outside)
    with pytest.raises(PairsError, match=r"xqlfw_pairs\.txt:2: .*outside the dataset's folder"):
        ingest_xqlfw(xq["images"], xq["pairs"], 2, tmp_path / "index2")
    assert not (tmp_path / "index1").exists() and not (tmp_path / "index2").exists()
