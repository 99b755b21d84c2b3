"""A step killed mid-write leaves no output that a later run could trust."""
import numpy as np
import pytest

from srlrfr.atomic import atomic_path, save_npz, write_json


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "aligned.npz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failure_keeps_previous_complete_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"acc": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise KeyboardInterrupt
    assert target.read_text().strip().startswith("{") and '"acc": 1' in target.read_text()


def test_success_renames(tmp_path):
    save_npz(tmp_path / "a.npz", x=np.arange(3))
    with np.load(tmp_path / "a.npz") as z:
        assert z["x"].tolist() == [0, 1, 2]
    with atomic_path(tmp_path / "d", is_dir=True) as tmp:
        (tmp / "f").write_text("ok")
    assert (tmp_path / "d" / "f").read_text() == "ok"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_outputs_follow_the_umask(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644  # group and others can read
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def test_torch_files_are_byte_reproducible(tmp_path):
    import hashlib

    import torch

    from srlrfr.atomic import save_torch
    state = {"w": torch.arange(6.0).reshape(2, 3), "meta": {"n": 1}}
    digests = set()
    for name in ("a.pt", "b.pt", "a.pt"):  # every save goes through a different temp name
        save_torch(tmp_path / name, state)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])
