"""A Snakemake run killed with kill -9: its lock is cleared only when that is provably safe."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from srlrfr import runs


def _dead_record() -> dict:
    proc = subprocess.Popen(["true"])
    proc.wait()
    rec = runs.record()
    return {**rec, "pid": proc.pid, "start": "1"}  # this host and boot, a process that is gone


def _setup(tmp_path, *records: dict) -> None:
    (tmp_path / runs.LOCK_DIR).mkdir(parents=True, exist_ok=True)
    (tmp_path / runs.LOCK_DIR / "0.input.lock").write_text("data/index/lfw\n")
    (tmp_path / runs.LOCK_DIR / "0.output.lock").write_text("data/landmarks/lfw.csv\n")
    (tmp_path / runs.RUNS_DIR).mkdir(parents=True, exist_ok=True)
    for i, rec in enumerate(records):
        (tmp_path / runs.RUNS_DIR / f"r{i}.json").write_text(json.dumps(rec))


def test_lock_of_a_dead_run_is_cleared(tmp_path):
    _setup(tmp_path, _dead_record())
    note = runs.clear_stale_lock(tmp_path)
    assert "cleared the lock" in note
    assert not list((tmp_path / runs.LOCK_DIR).iterdir()) and not list((tmp_path / runs.RUNS_DIR).iterdir())


def test_lock_is_kept_while_another_run_lives_or_cannot_be_checked(tmp_path):
    live = runs.record()  # this very process stands for a live Snakemake
    elsewhere = {**_dead_record(), "host": "another-node"}
    for other, says in ((live, f"another Snakemake run (pid {live['pid']}, started 20"), (elsewhere, "kept")):
        _setup(tmp_path, _dead_record(), other)
        note = runs.clear_stale_lock(tmp_path)
        assert says in note and "-unlock" in note, note
        assert len(list((tmp_path / runs.LOCK_DIR).iterdir())) == 2
        for d in (runs.LOCK_DIR, runs.RUNS_DIR):
            for f in (tmp_path / d).iterdir():
                f.unlink()


def test_lock_without_a_record_is_left_to_snakemake(tmp_path):
    _setup(tmp_path)
    assert runs.clear_stale_lock(tmp_path) is None
    assert len(list((tmp_path / runs.LOCK_DIR).iterdir())) == 2


def test_lock_is_kept_while_a_job_of_the_killed_run_works_here(tmp_path):
    dead = _dead_record()
    _setup(tmp_path, dead)
    env = dict(os.environ, **{runs.ENV: json.dumps(dead)})  # what the killed run handed its jobs
    job = subprocess.Popen(["bash", "-c", "exec -a srlrfr sleep 30"], cwd=tmp_path, env=env)
    cmdline = Path(f"/proc/{job.pid}/cmdline")
    deadline = time.monotonic() + 10
    while not cmdline.read_bytes().startswith(b"srlrfr\0") and time.monotonic() < deadline:
        time.sleep(0.01)  # until bash has exec'd: on a loaded machine that takes a while
    try:
        note = runs.clear_stale_lock(tmp_path)
    finally:
        job.kill()
        job.wait()
    assert "still running" in note and f"pid {job.pid}" in note
    assert len(list((tmp_path / runs.LOCK_DIR).iterdir())) == 2


def test_a_process_without_the_killed_runs_record_is_not_its_job(tmp_path):
    """Another Snakemake starting here (not yet recorded) is no job of the killed run: the lock is cleared."""
    _setup(tmp_path, _dead_record())
    other = subprocess.Popen(["bash", "-c", "exec -a snakemake sleep 30"], cwd=tmp_path,
                             env={k: v for k, v in os.environ.items() if k != runs.ENV})
    try:
        note = runs.clear_stale_lock(tmp_path)
    finally:
        other.kill()
        other.wait()
    assert "cleared the lock" in note, note


def test_a_job_stops_when_its_snakemake_is_gone(tmp_path):
    parent = subprocess.Popen(["sleep", "30"])
    env = dict(os.environ, **{runs.ENV: json.dumps(runs.record(parent.pid))})
    code = "import time; from srlrfr import runs; runs.watch_snakemake(); time.sleep(60)"
    job = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    parent.kill()
    parent.wait()
    _, err = job.communicate(timeout=30)
    assert job.returncode != 0 and "orphaned job" in err


def test_a_finished_run_names_damaged_missing_and_excluded(tmp_path):
    (tmp_path / "data" / "landmarks").mkdir(parents=True)
    (tmp_path / "data" / "landmarks" / "lfw_no_face.csv").write_text(
        "image_id,path,status\na,a.jpg,no_face\nb,b.jpg,corrupt\nc,c.jpg,unreadable\n")
    (tmp_path / "data" / "index" / "celeba").mkdir(parents=True)
    (tmp_path / "data" / "index" / "celeba" / "summary.json").write_text('{"listed": 10, "missing": 3}')
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.csv").write_text("method,n_excluded\nhr,0\nbicubic,4\n")
    notes = runs.run_notes(tmp_path)
    assert notes[0].startswith("lfw: 1 corrupt, 1 unreadable image(s)")
    assert "celeba: 3 of 10 listed images are missing" in notes[1]
    assert "up to 4 pairs per configuration excluded" in notes[2]
    (tmp_path / "data" / "landmarks" / "lfw_no_face.csv").write_text(
        "image_id,path,status,reason\na,a.jpg,no_face,\nd,d.jpg,bad_landmarks,eye distance 0.00 px\n")
    assert any(n.startswith("lfw: 1 image(s) whose landmarks are not a face's") for n in runs.run_notes(tmp_path))
    (tmp_path / "results" / "summary.csv").write_text("method,n_excluded\nhr,0\n")
    (tmp_path / "data" / "landmarks" / "lfw_no_face.csv").write_text("image_id,path,status\na,a.jpg,no_face\n")
    (tmp_path / "data" / "index" / "celeba" / "summary.json").write_text('{"listed": 10, "missing": 0}')
    assert runs.run_notes(tmp_path) == []
