"""One resolver for params paths: relative to the real repository, also from a DVC experiment's temporary copy."""
from pathlib import Path

import pytest

from srlrfr.config import validate
from srlrfr.paths import repo_root, resolve, resolve_params


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("SRLRFR_ROOT", raising=False)
    root = tmp_path / "repo"
    (root / "workflow").mkdir(parents=True)
    (root / "workflow" / "Snakefile").write_text("")
    return root


def test_root_from_a_dvc_experiment_copy(repo: Path, monkeypatch):
    copy = repo / ".dvc" / "tmp" / "exps" / "tmpk3x9" / "workflow"
    (copy / "rules").mkdir(parents=True)
    (copy / "Snakefile").write_text("")
    monkeypatch.chdir(copy.parent)
    assert repo_root() == repo.resolve()
    cfg = resolve_params(validate({"data": {"lfw": {"images": "../shared/lfw", "pairs": "download"}}}))
    assert cfg["data"]["lfw"]["images"] == str(repo.resolve() / "../shared/lfw")
    assert cfg["data"]["lfw"]["pairs"] == "download"  # a keyword, not a file
    assert cfg["data"]["cache"] == str(repo.resolve() / "data/downloads")  # queued experiments share one cache


def test_root_from_a_subfolder_and_the_environment(repo: Path, monkeypatch):
    (repo / "results" / "eval").mkdir(parents=True)
    monkeypatch.chdir(repo / "results" / "eval")
    assert repo_root() == repo.resolve()  # never the current folder
    monkeypatch.setenv("SRLRFR_ROOT", "/somewhere/else")
    assert repo_root() == Path("/somewhere/else")


def test_home_and_variables_are_expanded(repo: Path, monkeypatch):
    monkeypatch.chdir(repo)
    monkeypatch.setenv("LAB_DATA", "/lab/data")
    monkeypatch.setenv("HOME", "/home/me")
    assert resolve("$LAB_DATA/lfw") == Path("/lab/data/lfw")
    assert resolve("~/faces") == Path("/home/me/faces")
    assert resolve("/abs/path") == Path("/abs/path")
    cfg = resolve_params(validate({"fnets": {"dlib_resnet34": {"weights": "$LAB_DATA/dlib.dat"}},
                                   "train": {"pretrained": "presets/cpu/weights"},
                                   "align": {"landmarks": {"lfw": "authors", "celeba": "marks.csv"}}}))
    assert cfg["fnets"]["dlib_resnet34"]["weights"] == "/lab/data/dlib.dat"
    assert cfg["fnets"]["sphereface20"]["weights"] == "download"
    assert cfg["train"]["pretrained"] == str(repo.resolve() / "presets/cpu/weights")
    assert cfg["align"]["landmarks"] == {**cfg["align"]["landmarks"], "lfw": "authors",
                                         "celeba": str(repo.resolve() / "marks.csv")}


def test_relative_params_undo_resolve_inside_the_repository(tmp_path, monkeypatch):
    """The report shows params the same in every clone: paths inside the repository relative again."""
    from srlrfr.paths import relative_params, resolve_params
    monkeypatch.setenv("SRLRFR_ROOT", str(tmp_path / "clone"))
    cfg = {"data": {"cache": "data/downloads", "lfw": {"images": "/elsewhere/lfw"}}}
    resolved = resolve_params(cfg)
    assert resolved["data"]["cache"] == str(tmp_path / "clone" / "data" / "downloads")
    assert relative_params(resolved) == cfg
