"""Safe, atomic extraction: hostile members are refused before anything is written."""
from __future__ import annotations

import io
import json
import os
import random
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import multivolumefile
import py7zr
import pytest
from conftest import COUNTS, REPO

from srlrfr.cachelock import exclusive
from srlrfr.data import archive as archive_mod
from srlrfr.data.archive import MARKER, UnsafeArchiveError, extract, is_complete, read_marker, volume_parts

FILES = {"top/a.txt": b"alpha\n", "top/sub/b.bin": random.Random(1).randbytes(5000)}


def _write_tree(root: Path) -> None:
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def _assert_tree(out: Path) -> None:
    for name, data in FILES.items():
        assert (out / name).read_bytes() == data


def _tar_with(path: Path, evil: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))  # a harmless member first: must not be written either
        tar.addfile(evil, io.BytesIO(data) if data else None)
    return path


def _leftovers(parent: Path, dest: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{dest.name}.")]


def _evil_tar_members():
    up = tarfile.TarInfo("../evil.txt")
    up.size = 4
    absolute = tarfile.TarInfo("/tmp/srlrfr-evil.txt")
    absolute.size = 4
    sym = tarfile.TarInfo("link")
    sym.type, sym.linkname = tarfile.SYMTYPE, "/etc/passwd"
    escaping = tarfile.TarInfo("hard")
    escaping.type, escaping.linkname = tarfile.LNKTYPE, "../../etc/passwd"
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    return {"dotdot": (up, b"evil"), "symlink": (sym, b""), "escaping_hardlink": (escaping, b""),
            "device": (dev, b"")}


@pytest.mark.parametrize("kind", list(_evil_tar_members()))
def test_tar_unsafe_members_rejected_before_writing(tmp_path, kind):
    member, data = _evil_tar_members()[kind]
    arc = _tar_with(tmp_path / "evil.tgz", member, data)
    dest = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchiveError, match="nothing was extracted"):
        extract(arc, dest)
    assert not dest.exists()
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/srlrfr-evil.txt").exists()
    assert _leftovers(tmp_path / "work", dest) == []


def test_tar_absolute_member_lands_inside_the_destination(tmp_path):
    member = tarfile.TarInfo("/tmp/srlrfr-evil.txt")
    member.size = 4
    dest = extract(_tar_with(tmp_path / "abs.tgz", member, b"evil"), tmp_path / "out")
    assert (dest / "tmp" / "srlrfr-evil.txt").read_bytes() == b"evil"  # leading slash stripped
    assert not Path("/tmp/srlrfr-evil.txt").exists()


def test_zip_unsafe_members_rejected(tmp_path):
    dest = tmp_path / "out"
    up = tmp_path / "up.zip"
    with zipfile.ZipFile(up, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(zipfile.ZipInfo("../evil.txt"), b"evil")
    with pytest.raises(UnsafeArchiveError, match="'..'"):
        extract(up, dest)
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(link, dest)
    win = tmp_path / "win.zip"
    with zipfile.ZipFile(win, "w") as zf:
        zf.writestr(zipfile.ZipInfo("C:/evil.txt"), b"evil")
    with pytest.raises(UnsafeArchiveError):
        extract(win, dest)
    assert not dest.exists() and not (tmp_path / "evil.txt").exists()
    assert _leftovers(tmp_path, dest) == []


def test_7z_symlink_rejected(tmp_path):
    (tmp_path / "lnk").symlink_to("/etc/passwd")
    arc = tmp_path / "ln.7z"
    with py7zr.SevenZipFile(arc, "w") as sz:
        sz.write(tmp_path / "lnk", "lnk")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract(arc, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_good_tgz_and_zip_extract_with_marker(tmp_path):
    src = tmp_path / "src"
    _write_tree(src)
    tgz = tmp_path / "good.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "top", arcname="top")
    zpath = tmp_path / "good.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
    for arc in (tgz, zpath):
        out = extract(arc, tmp_path / f"out-{arc.suffix[1:]}")
        _assert_tree(out)
        assert is_complete(out) and is_complete(out, arc)
        marker = json.loads((out / MARKER).read_text())
        assert marker["archive"] == arc.name and marker["size"] == arc.stat().st_size
        assert _leftovers(tmp_path, out) == []


def test_multipart_7z_extracts(tmp_path):
    payload = random.Random(2).randbytes(200_000)  # incompressible: spans several volumes
    (tmp_path / "m.pth").write_bytes(payload)
    with multivolumefile.MultiVolume(tmp_path / "edsr.7z", mode="wb", volume=64_000,
                                     ext_digits=3) as vol:
        with py7zr.SevenZipFile(vol, "w") as sz:
            sz.write(tmp_path / "m.pth", "m.pth")
    parts = volume_parts(tmp_path / "edsr.7z.001")
    assert [p.name for p in parts] == [f"edsr.7z.{i:03d}" for i in range(1, len(parts) + 1)]
    assert len(parts) >= 3
    out = extract(parts[0], tmp_path / "out")
    assert (out / "m.pth").read_bytes() == payload
    assert read_marker(out)["size"] == sum(p.stat().st_size for p in parts)
    # a stray file sharing the volumes' prefix would be spliced in by multivolumefile
    (tmp_path / "edsr.7z.002.part").write_bytes(b"junk")
    with pytest.raises(ValueError, match="edsr.7z.002.part"):
        extract(parts[0], tmp_path / "out2")


def test_complete_dest_is_reused_and_other_archive_replaces_it(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _write_tree(src)
    a = tmp_path / "a.tar"
    with tarfile.open(a, "w") as tar:
        tar.add(src / "top", arcname="top")
    out = extract(a, tmp_path / "out")
    calls = []
    monkeypatch.setattr(archive_mod, "_extract_into", lambda *args: calls.append(args) or 0)
    assert extract(a, out) == out and calls == []
    monkeypatch.undo()
    b = tmp_path / "b.zip"
    with zipfile.ZipFile(b, "w") as zf:
        zf.writestr("only.txt", b"b")
    assert not is_complete(out, b)
    extract(b, out)
    assert (out / "only.txt").exists() and not (out / "top").exists()


def test_killed_run_leftover_is_ignored_and_cleaned(tmp_path):
    src = tmp_path / "src"
    _write_tree(src)
    tgz = tmp_path / "good.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "top", arcname="top")
    dest = tmp_path / "out"
    # what a killed run leaves: a half-filled temp sibling (no marker) and no dest
    stale = tmp_path / ".out.k1ll3d.extracting"
    (stale / "top").mkdir(parents=True)
    (stale / "top" / "a.txt").write_bytes(b"alp")
    assert not is_complete(dest) and not is_complete(stale)
    extract(tgz, dest)
    assert not stale.exists()
    _assert_tree(dest)


def test_failure_midway_leaves_no_dest(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _write_tree(src)
    tgz = tmp_path / "good.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "top", arcname="top")
    real = archive_mod._extract_into

    def crash(arc, kind, out):
        real(arc, kind, out)
        raise KeyboardInterrupt  # interrupted after writing files, before the marker

    monkeypatch.setattr(archive_mod, "_extract_into", crash)
    with pytest.raises(KeyboardInterrupt):
        extract(tgz, tmp_path / "out")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path, tmp_path / "out") == []


def test_foreign_nonempty_dest_is_not_replaced(tmp_path):
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("x.txt", b"x")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not made by extract"):
        extract(zpath, mine)
    assert (mine / "precious.txt").read_text() == "keep"
    assert not is_complete(mine)
    assert os.listdir(mine) == ["precious.txt"]


# ---------------------------------------------------------------- runs sharing one cache

EXTRACT = "import sys; from srlrfr.data.archive import extract; extract(sys.argv[1], sys.argv[2])"
MEMBERS = {f"faces/p{i:02d}/img.jpg": random.Random(i).randbytes(2000) for i in range(30)}


def _extractor(tmp_path: Path, name: str, archive: Path, dest: Path, pause_at: str | None = None):
    """``extract`` in a real process, its stderr (the 'waiting' line) in ``<name>.err``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("SRLRFR_PAUSE_AT", None)
    if pause_at:
        env.update(SRLRFR_PAUSE_AT=pause_at, SRLRFR_PAUSE_FILE=str(tmp_path / f"{name}.paused"))
    err = open(tmp_path / f"{name}.err", "w")
    return subprocess.Popen([sys.executable, "-c", EXTRACT, str(archive), str(dest)], env=env, stderr=err)


def _wait_for(check, what: str, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def test_runs_sharing_a_cache_extract_once_and_a_killed_one_hurts_nobody(tmp_path):
    """Run A is killed midway through unpacking (holding the lock); run B, waiting for A, is killed too and
    leaves A's temp folder alone; run C then finds A dead, removes its leftovers and unpacks all of it."""
    COUNTS["faults injected"] += 2
    zpath = tmp_path / "faces.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
    cache = tmp_path / "cache"
    dest = cache / "faces"
    a = _extractor(tmp_path, "a", zpath, dest, pause_at="extract:faces.zip#10")
    try:
        _wait_for(lambda: (tmp_path / "a.paused").exists(), "run A to stop after 10 members")
        [a_temp] = _leftovers(cache, dest)
        b = _extractor(tmp_path, "b", zpath, dest)
        _wait_for(lambda: "waiting for it" in (tmp_path / "b.err").read_text(), "run B to wait for A")
        assert f"pid {a.pid}" in (tmp_path / "b.err").read_text()  # whom it waits for
        _kill(b)
        assert _leftovers(cache, dest) == [a_temp] and not dest.exists()  # A's folder is still A's
        c = _extractor(tmp_path, "c", zpath, dest)
        _wait_for(lambda: "waiting for it" in (tmp_path / "c.err").read_text(), "run C to wait for A")
    finally:
        a.send_signal(signal.SIGKILL)  # not reaped before C goes on: a zombie's temp folder is a dead one's
    assert c.wait(timeout=300) == 0, (tmp_path / "c.err").read_text()
    a.wait(timeout=60)
    assert is_complete(dest, zpath) and read_marker(dest)["members"] == len(MEMBERS)
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*.jpg")} == MEMBERS
    assert _leftovers(cache, dest) == []
    COUNTS["faults survived"] += 2


def test_a_second_run_reuses_the_first_ones_extraction(tmp_path, monkeypatch):
    """While a run holds the lock the other waits; it then finds the folder complete and extracts nothing."""
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("x.txt", b"x")
    dest = tmp_path / "cache" / "a"
    done = []
    with exclusive(dest):
        waiter = threading.Thread(target=lambda: done.append(extract(zpath, dest)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not done
        extract_calls = []
        real = archive_mod._extract_into
        monkeypatch.setattr(archive_mod, "_extract_into", lambda *a: extract_calls.append(a) or real(*a))
        archive_mod._extract_locked(zpath, "zip", archive_mod._archive_identity(zpath), dest)  # the lock holder
    waiter.join(30)
    assert done == [dest] and len(extract_calls) == 1 and (dest / "x.txt").read_bytes() == b"x"


def test_extracted_folder_gets_the_umask_permissions(tmp_path):
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("top/x.txt", b"x")
    old = os.umask(0o022)
    try:
        out = extract(zpath, tmp_path / "downloads" / "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert stat.S_IMODE((out / "top").stat().st_mode) == 0o755
