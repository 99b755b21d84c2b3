"""A step killed mid-write leaves no output that a later run could trust."""
import os

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


def test_all_or_nothing_commits_together_or_not_at_all(tmp_path):
    from srlrfr.atomic import all_or_nothing, write_text
    (tmp_path / "b.txt").write_text("earlier")
    with pytest.raises(OSError):
        with all_or_nothing():
            write_text(tmp_path / "a.txt", "new")
            write_text(tmp_path / "b.txt", "new")
            raise OSError(28, "No space left on device")  # a third output fails
    assert not (tmp_path / "a.txt").exists() and (tmp_path / "b.txt").read_text() == "earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]
    with all_or_nothing():
        write_text(tmp_path / "a.txt", "new")
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            write_text(tmp / "inner.txt", "x")  # inside a folder being filled: in place at once
            assert (tmp / "inner.txt").read_text() == "x"
        assert not (tmp_path / "a.txt").exists()  # staged until the block ends
    assert (tmp_path / "a.txt").read_text() == "new" and (tmp_path / "d" / "inner.txt").read_text() == "x"


def test_write_errors_name_the_output_not_its_temp_file(tmp_path):
    from srlrfr.errors import OutputError, describe
    with pytest.raises(OutputError) as err:
        with atomic_path(tmp_path / "summary.csv") as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert err.value.filename == str(tmp_path / "summary.csv")
    text = describe(err.value)
    assert f"cannot write {tmp_path / 'summary.csv'}: the disk is full (ENOSPC)" in text and "df -h" in text


def test_torch_write_error_is_traced_to_the_os(tmp_path, monkeypatch):
    import torch

    from srlrfr.atomic import save_torch
    from srlrfr.errors import OutputError

    def failing(obj, fh):
        try:
            raise OSError(27, "File too large")
        except OSError:  # torch's writer turns the OSError into this RuntimeError
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None
    monkeypatch.setattr(torch, "save", failing)
    with pytest.raises(OutputError) as err:
        save_torch(tmp_path / "m.pt", {})
    assert err.value.errno == 27 and err.value.filename == str(tmp_path / "m.pt")
    monkeypatch.setattr(torch, "save", lambda obj, fh: (_ for _ in ()).throw(RuntimeError("unexpected pos 1 vs 2")))
    with pytest.raises(OutputError) as err:
        save_torch(tmp_path / "m.pt", {})
    assert err.value.errno == 28  # no OSError behind it: torch's wording means a full disk
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temp_file_is_removed_by_the_next(tmp_path):
    import socket
    import subprocess
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that has exited
    stale = tmp_path / f".out.csv.{socket.gethostname()}-{dead.pid}.abc.tmp"
    live = tmp_path / f".out.csv.{socket.gethostname()}-{os.getpid()}.abc.tmp"
    other_host = tmp_path / f".out.csv.elsewhere-{dead.pid}.abc.tmp"
    for p in (stale, live, other_host):
        p.write_text("half")
    with atomic_path(tmp_path / "out.csv") as tmp:
        tmp.write_text("ok")
    assert not stale.exists() and live.exists() and other_host.exists()


@pytest.mark.parametrize("code, cause", [(28, "disk is full"), (122, "quota"), (30, "read-only"),
                                         (13, "permission denied"), (27, "file-size limit")])
def test_each_write_refusal_says_its_cause_and_fix(tmp_path, code, cause):
    from srlrfr.errors import OutputError, describe
    with pytest.raises(OutputError) as err:
        with atomic_path(tmp_path / "out" / "model.pt") as tmp:
            raise OSError(code, os.strerror(code), str(tmp))
    text = describe(err.value)
    assert text.startswith(f"cannot write {tmp_path / 'out' / 'model.pt'}: ") and cause in text and "Fix: " in text
    assert "Traceback" not in text and ".tmp" not in text
