"""Resolvers: local folders/archives (fake layouts and the real sample data, read-only) and
'download' against a local HTTP server standing in for the real hosts."""
from __future__ import annotations

import hashlib
import random
import subprocess
import tarfile
from pathlib import Path

import multivolumefile
import py7zr
import pytest
from test_download import Site, closed_port, serve

from srlrfr.data import fetch, sources
from srlrfr.data.archive import is_complete
from srlrfr.data.download import ChecksumError, DownloadError
from srlrfr.data.sources import Artefact

PEOPLE = {"Alice_Smith": 2, "Bob_Jones": 1}


def _fake_lfw(root: Path) -> Path:
    for person, n in PEOPLE.items():
        (root / person).mkdir(parents=True)
        for i in range(1, n + 1):
            (root / person / f"{person}_{i:04d}.jpg").write_bytes(b"\xff\xd8fake")
    return root


def _tgz(folder: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


def _names(root: Path) -> dict[str, int]:
    return {p.name: len(list(p.iterdir())) for p in root.iterdir() if p.is_dir()}


def test_lfw_folder_parent_and_tgz(tmp_path):
    lfw = _fake_lfw(tmp_path / "data" / "lfw")
    cache = tmp_path / "cache"
    assert fetch.resolve_lfw_images(lfw, cache) == lfw
    assert fetch.resolve_lfw_images(str(lfw.parent), cache) == lfw
    arc = _tgz(lfw, tmp_path / "lfw.tgz")
    root = fetch.resolve_lfw_images(arc, cache)
    assert root.is_relative_to(cache) and root.name == "lfw"
    assert _names(root) == PEOPLE
    assert is_complete(cache / "lfw")
    assert fetch.resolve_lfw_images(arc, cache) == root  # second call reuses the extraction


def test_lfw_bad_sources_name_the_path(tmp_path):
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no LFW images in .*empty"):
        fetch.resolve_lfw_images(tmp_path / "empty", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="nowhere.*params.yaml"):
        fetch.resolve_lfw_images(tmp_path / "nowhere", tmp_path / "cache")


def test_real_sample_lfw_resolves_read_only(shared_data, tmp_path):
    src = shared_data / "lfw-fold1"
    cache = tmp_path / "cache"
    root = fetch.resolve_lfw_images(src, cache)
    assert root == src / "images"
    assert len(list(root.glob("*/*.jpg"))) == 807
    pairs = fetch.resolve_lfw_pairs(src, cache)
    assert pairs == src / "pairs.txt"
    assert pairs.read_text().splitlines()[0].split() == ["1", "300"]
    assert not cache.exists()  # nothing copied or extracted for a local folder


def test_pairs_file_checks(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("Alice\t1\t2\n")
    with pytest.raises(ValueError, match="does not look like an LFW pairs file"):
        fetch.resolve_lfw_pairs(bad, tmp_path)
    with pytest.raises(FileNotFoundError, match="no LFW pairs file at .*missing"):
        fetch.resolve_lfw_pairs(tmp_path / "missing", tmp_path)


def test_celeba_layouts_and_errors(tmp_path):
    flat = tmp_path / "flat"
    (flat / "img_celeba").mkdir(parents=True)
    (flat / "identity_CelebA.txt").write_text("000001.jpg 1\n")
    assert fetch.resolve_celeba(flat, tmp_path, images="in_the_wild") == (flat / "img_celeba",
                                                                          flat / "identity_CelebA.txt")
    # the setting names the image set; the other one alone is an error, not a silent substitute
    with pytest.raises(FileNotFoundError, match=r"holds img_celeba/ but not img_align_celeba/.*"
                                                r"data.celeba.images: in_the_wild"):
        fetch.resolve_celeba(flat, tmp_path, images="aligned")
    (flat / "img_align_celeba").mkdir()  # both present: the setting chooses
    assert fetch.resolve_celeba(flat, tmp_path)[0] == flat / "img_align_celeba"
    assert fetch.resolve_celeba(flat, tmp_path, images="in_the_wild")[0] == flat / "img_celeba"
    official = tmp_path / "CelebA"
    (official / "Img" / "img_align_celeba").mkdir(parents=True)
    (official / "Anno").mkdir()
    (official / "Anno" / "identity_CelebA.txt").write_text("000001.jpg 1\n")
    assert fetch.resolve_celeba(official, tmp_path) == (
        official / "Img" / "img_align_celeba", official / "Anno" / "identity_CelebA.txt")
    no_ids = tmp_path / "no_ids"
    (no_ids / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"no identity_CelebA.txt in {no_ids}"):
        fetch.resolve_celeba(no_ids, tmp_path)
    (no_ids / "images").rmdir()
    (no_ids / "identity_CelebA.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="no CelebA images folder"):
        fetch.resolve_celeba(no_ids, tmp_path)


def test_real_sample_celeba_resolves(shared_data, tmp_path):
    src = shared_data / "celeba-sample"
    images, identity = fetch.resolve_celeba(src, tmp_path / "cache")
    assert images == src / "images" and identity == src / "identity_CelebA.txt"
    assert fetch.resolve_celeba(src, tmp_path / "cache", images="in_the_wild")[0] == src / "images"
    assert len(identity.read_text().splitlines()) == 2000


def test_lfw_download_verifies_and_extracts(tmp_path, monkeypatch):
    lfw = _fake_lfw(tmp_path / "src" / "lfw")
    data = _tgz(lfw, tmp_path / "served.tgz").read_bytes()
    site = Site()
    site.files["/lfw/lfw.tgz"] = data
    with serve(site) as base:
        dead = f"http://127.0.0.1:{closed_port()}/lfw.tgz"
        official = Artefact("lfw", (dead,), "lfw.tgz", md5=hashlib.md5(data).hexdigest())
        mirror = Artefact("lfw mirror", (f"{base}/lfw/lfw.tgz",), "lfw.tgz",
                          sha256=hashlib.sha256(data).hexdigest())
        monkeypatch.setitem(sources.LFW_IMAGE_ARCHIVES, "original", (official, mirror))
        cache = tmp_path / "cache"
        root = fetch.resolve_lfw_images("download", cache, progress=False)
        assert _names(root) == PEOPLE and (cache / "lfw.tgz").read_bytes() == data
        n = len(site.log)
        assert fetch.resolve_lfw_images("download", cache, progress=False) == root
        assert len(site.log) == n  # verified copy reused, no request
        # a mirror serving other bytes is refused, and nothing is left behind
        bad = Artefact("bad", (f"{base}/lfw/lfw.tgz",), "lfw.tgz", md5="0" * 32)
        monkeypatch.setitem(sources.LFW_IMAGE_ARCHIVES, "original", (bad,))
        with pytest.raises(ChecksumError):
            fetch.resolve_lfw_images("download", tmp_path / "cache2", progress=False)
        assert not (tmp_path / "cache2" / "lfw.tgz").exists()


def test_offline_download_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    dead = Artefact("pairs", (f"http://127.0.0.1:{closed_port()}/pairs.txt",), "pairs.txt",
                    md5="0" * 32)
    monkeypatch.setattr(sources, "LFW_PAIRS_CANDIDATES", (dead, dead))
    with pytest.raises(DownloadError, match="data.lfw.pairs in params.yaml"):
        fetch.resolve_lfw_pairs("download", tmp_path, progress=False)


def _git_blob(path: Path) -> str:
    return subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def _fake_edsr_parts(folder: Path) -> tuple[bytes, list[Path]]:
    folder.mkdir(parents=True)
    weights = random.Random(3).randbytes(150_000)
    (folder / "edsr_baseline.pth").write_bytes(weights)
    with multivolumefile.MultiVolume(folder / "edsr_baseline.7z", mode="wb", volume=100_000,
                                     ext_digits=3) as vol:
        with py7zr.SevenZipFile(vol, "w") as sz:
            sz.write(folder / "edsr_baseline.pth", "edsr_baseline.pth")
    (folder / "edsr_baseline.pth").unlink()
    return weights, sorted(folder.glob("edsr_baseline.7z.*"))


def test_authors_weights_download_and_local(tmp_path, monkeypatch):
    weights, parts = _fake_edsr_parts(tmp_path / "repo")
    assert len(parts) == 2
    site = Site()
    with serve(site) as base:
        arts = tuple(Artefact(p.name, (f"{base}/pretrained/{p.name}",), p.name,
                              git_blob=_git_blob(p)) for p in parts)
        for p in parts:
            site.files[f"/pretrained/{p.name}"] = p.read_bytes()
        monkeypatch.setitem(sources.AUTHORS_WEIGHTS, "edsr_baseline", (arts, "edsr_baseline.pth"))
        pth = fetch.fetch_authors_weights("edsr_baseline", tmp_path / "w", progress=False)
    assert pth == tmp_path / "w" / "edsr_baseline" / "edsr_baseline.pth"
    assert pth.read_bytes() == weights
    # the same files from a local folder, verified by blob id, extracted elsewhere
    pth2 = fetch.fetch_authors_weights("edsr_baseline", tmp_path / "w2", source=tmp_path / "repo")
    assert pth2.read_bytes() == weights
    data = bytearray(parts[1].read_bytes())
    data[10] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="edsr_baseline.7z.002"):
        fetch.fetch_authors_weights("edsr_baseline", tmp_path / "w3", source=tmp_path / "repo")
    assert not (tmp_path / "w3").exists()
    # unpacked by hand (authors' README): used, with a warning that it is unverified
    (tmp_path / "unpacked").mkdir()
    (tmp_path / "unpacked" / "edsr_baseline.pth").write_bytes(weights)
    with pytest.warns(UserWarning, match="unverified"):
        assert fetch.fetch_authors_weights("edsr_baseline", tmp_path / "w5",
                                           source=tmp_path / "unpacked").read_bytes() == weights
    with pytest.raises(FileNotFoundError, match="no sface.pth in"):
        fetch.fetch_authors_weights("sface", tmp_path / "w4", source=tmp_path / "repo")
    with pytest.raises(ValueError, match="unknown authors' checkpoint"):
        fetch.fetch_authors_weights("edsr", tmp_path / "w4")


def test_celeba_in_the_wild_download_names_the_files_to_fetch(tmp_path, monkeypatch):
    identity = b"000001.jpg 1\n"
    site = Site()
    site.files["/identity_CelebA.txt"] = identity
    with serve(site) as base:
        art = Artefact("identity_CelebA.txt", (f"{base}/identity_CelebA.txt",), "identity_CelebA.txt",
                       md5=hashlib.md5(identity).hexdigest())
        monkeypatch.setattr(sources, "CELEBA_IDENTITY", art)
        with pytest.raises(FileNotFoundError) as err:
            fetch.resolve_celeba("download", tmp_path / "cache", images="in_the_wild", progress=False)
        text = str(err.value)
        assert all(f"img_celeba.7z.{i:03d}" in text for i in range(1, 15)) and "img_celeba.7z.015" not in text
        assert "data.celeba.source" in text and str(tmp_path / "cache" / "img_celeba") in text
        (tmp_path / "cache" / "img_celeba").mkdir()  # extracted by hand where the message says
        assert fetch.resolve_celeba("download", tmp_path / "cache", images="in_the_wild", progress=False) == (
            tmp_path / "cache" / "img_celeba", tmp_path / "cache" / "identity_CelebA.txt")


def test_landmark_sources(tmp_path):
    own = tmp_path / "mine.csv"
    own.write_text("x")
    assert fetch.resolve_landmarks(str(own), "lfw", tmp_path) == (own, "auto")
    with pytest.raises(FileNotFoundError, match=r"align.landmarks.lfw.*'detect', 'authors'"):
        fetch.resolve_landmarks(str(tmp_path / "nope.csv"), "lfw", tmp_path)
    with pytest.raises(ValueError, match="not for 'toyset'"):
        fetch.resolve_landmarks("authors", "toyset", tmp_path)


def test_source_tables_are_consistent():
    for art in (sources.SFACE_PTH, *sources.EDSR_BASELINE_PARTS, *sources.EDSR_LAMBDA05_PARTS):
        assert len(art.git_blob) == 40 and all(u.endswith("/pretrained/" + art.filename) for u in art.urls)
    for dataset, (art, layout) in sources.AUTHORS_LANDMARKS.items():
        assert len(art.git_blob) == 40 and all(u.endswith("/data/" + art.filename) for u in art.urls)
        assert layout in ("headerless", "header"), dataset
    assert sources.LFW_LANDMARKS_AUTHORS.git_blob == "989bbeefafca299e2a7ad5d0bc22ff84a7da9fea"
    assert sources.CELEBA_LANDMARKS_AUTHORS.git_blob == "3cdfaab9d33624feedf49f6ad787e5856fee61f1"
    for art in (sources.CELEBA_IMG_ALIGN_ZIP, sources.CELEBA_IDENTITY):
        assert art.google_drive_id and len(art.md5) == 32


def test_sface_local_file_is_verified_in_place(tmp_path, monkeypatch):
    pth = tmp_path / "my_sface.pth"
    pth.write_bytes(random.Random(4).randbytes(1000))
    art = Artefact("sface.pth", ("http://127.0.0.1:9/sface.pth",), "sface.pth",
                   git_blob=_git_blob(pth))
    monkeypatch.setitem(sources.AUTHORS_WEIGHTS, "sface", ((art,), "sface.pth"))
    assert fetch.fetch_authors_weights("sface", tmp_path / "w", source=pth) == pth
    assert not (tmp_path / "w").exists()
    pth.write_bytes(pth.read_bytes()[:-1])
    with pytest.raises(ChecksumError, match="my_sface.pth"):
        fetch.fetch_authors_weights("sface", tmp_path / "w", source=pth)
