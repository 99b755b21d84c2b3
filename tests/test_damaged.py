"""Damaged .npz/.npy/.pt files: named, called DAMAGED, with the step that remakes them (srlrfr.damaged)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from srlrfr.damaged import DamagedFileError, load_npy, load_npz, writing_step
from srlrfr.models.weights import CheckpointError, load_checkpoint


@pytest.mark.parametrize("path, step", [
    ("data/aligned/lfw_dlib_160x160/images.npy", "align"), ("data/degraded/lfw_x/x8.npy", "degrade"),
    ("/abs/proj/results/eval/lfw/f/bicubic/10x10/features.npz", "evaluate"),
    ("results/features/lfw/f/hr.npz", "features"), ("models/srnets/f/edsr_lambda0/checkpoint.pt", "train"),
    ("models/fnets/dlib_resnet34.pt", "fnet_weights"), ("data/downloads/lfw.tgz", None), ("elsewhere/x.pt", None)])
def test_writing_step(path, step):
    assert writing_step(path) == step


def _npz_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, ids=np.array(["a", "b"]), features=np.ones((2, 4)))
    return buf.getvalue()


@pytest.mark.parametrize("cut", ["half", "random", "missing key"])
def test_damaged_npz_names_file_and_step(tmp_path, cut):
    path = tmp_path / "results" / "eval" / "lfw" / "f" / "hr" / "160x160" / "features.npz"
    path.parent.mkdir(parents=True)
    data = _npz_bytes()
    path.write_bytes({"half": data[:len(data) // 2], "random": os.urandom(len(data))}.get(cut, data))
    keys = ("ids", "nope") if cut == "missing key" else ("ids", "features")
    with pytest.raises(DamagedFileError, match=r"features\.npz is DAMAGED.*delete it and rerun step evaluate"):
        load_npz(path, keys)


def test_good_npz_and_npy_load(tmp_path):
    (tmp_path / "f.npz").write_bytes(_npz_bytes())
    assert load_npz(tmp_path / "f.npz", ("features",))["features"].shape == (2, 4)
    np.save(tmp_path / "a.npy", np.arange(6))
    assert load_npy(tmp_path / "a.npy", mmap_mode="r").tolist() == list(range(6))


@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_truncated_npy(tmp_path, mmap_mode):
    np.save(tmp_path / "a.npy", np.arange(1000))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:300])
    with pytest.raises(DamagedFileError, match=r"a\.npy is DAMAGED.*download or copy it again"):
        load_npy(tmp_path / "a.npy", mmap_mode=mmap_mode)


@pytest.mark.parametrize("content", ["random", "truncated"])
def test_damaged_checkpoint_is_not_called_crafted(tmp_path, content):
    path = tmp_path / "models" / "srnets" / "f" / "edsr_lambda0" / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    torch.save({"w": torch.ones(100)}, path)
    path.write_bytes(os.urandom(5000) if content == "random" else path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as err:  # still a CheckpointError, for callers that catch that
        load_checkpoint(path)
    assert isinstance(err.value, DamagedFileError)
    msg = str(err.value)
    assert "checkpoint.pt is DAMAGED" in msg and "delete it and rerun step train" in msg and "refused" not in msg
