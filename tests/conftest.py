"""Shared fixtures. ``shared_data`` is the read-only sample data beside the repo
(../shared/data), used exactly as a user's local copy of LFW / CelebA would be.

``smoke_repo``/``smoke_run``/``smoke_reference``: one run of the real DAG on the
smoke preset per test session, shared by the end-to-end tests
(test_pipeline_e2e.py) and the fault tests (test_faults.py).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What the fault and bad-input suites tried (tests/test_faults*.py, tests/test_bad_inputs*.py), printed at
# the end; a session that ran all of their cases writes it into README.md and docs/reliability.md.
COUNTS = {"faults injected": 0, "faults survived": 0,
          "bad inputs tried": 0, "bad inputs rejected with a clear message": 0, "silent results": 0}
RELIABILITY_SUITES = ("test_faults*.py", "test_bad_inputs*.py")
RELIABILITY_CASES = REPO / "tests" / "reliability_counts.json"  # the counts and the cases they come from
RELIABILITY_PAGES = (REPO / "README.md", REPO / "docs" / "reliability.md")
BLOCK = re.compile(r"(<!-- reliability-counts[^>]*-->\n)(.*?)(<!-- /reliability-counts -->)", re.S)
_ran: dict[str, str] = {}  # nodeid -> outcome, for the reliability suites' cases
_deselected: list[str] = []


def silent(found) -> bool:
    """Count a silent result (a wrong or half-written output, or a bad input accepted with exit 0) where a
    test checks for one: ``assert not silent(rc == 0)``."""
    if found:
        COUNTS["silent results"] += 1
    return bool(found)


def reliability_files() -> list[str]:
    return sorted(p.name for pattern in RELIABILITY_SUITES for p in (REPO / "tests").glob(pattern))


def counts_line(counts: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in counts.items())


def counts_block(counts: dict) -> str:
    return f"```\n{counts_line(counts)}\n```\n"


def _reliability(nodeid: str) -> bool:
    return nodeid.split("::")[0].rsplit("/", 1)[-1] in reliability_files()


def pytest_deselected(items):
    _deselected.extend(i.nodeid for i in items if _reliability(i.nodeid))


def pytest_runtest_logreport(report):
    if not _reliability(report.nodeid):
        return
    if report.skipped or report.failed:  # in setup, call or teardown
        _ran[report.nodeid] = report.outcome
    elif report.when == "call":
        _ran.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session):
    """All the reliability suites' cases ran and passed (none deselected, skipped, left out or failed): write
    their counts. A failing session leaves the last passing one's in place; its failures are reported anyway."""
    cases = sorted(i.nodeid for i in session.items if _reliability(i.nodeid))
    files = {c.split("::")[0].rsplit("/", 1)[-1] for c in cases}
    narrowed = any("::" in str(a) for a in session.config.args)
    if (not cases or files != set(reliability_files()) or _deselected or narrowed
            or sorted(_ran) != cases or set(_ran.values()) != {"passed"}):
        return
    from srlrfr.atomic import atomic_path
    with atomic_path(RELIABILITY_CASES) as tmp:
        tmp.write_text(json.dumps({"counts": COUNTS, "cases": cases}, indent=1) + "\n")
    for page in RELIABILITY_PAGES:
        text = page.read_text()
        with atomic_path(page) as tmp:
            tmp.write_text(BLOCK.sub(lambda m: m[1] + counts_block(COUNTS) + m[3], text))


SMOKE_FIXTURES = {"smoke_repo", "smoke_run", "smoke_reference"}


def pytest_collection_modifyitems(config, items):
    """A test that needs the shared smoke run (minutes of the real DAG) is in the slow tier, marked or not,
    so `-m "not slow"` never starts it."""
    for item in items:
        if SMOKE_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    if any(COUNTS.values()):
        terminalreporter.write_sep("-", "reliability")
        terminalreporter.write_line(counts_line(COUNTS))


def shared_data_dir() -> Path | None:
    env = os.environ.get("SRLRFR_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def run_env(**extra: str) -> dict[str, str]:
    # DVC commits experiments itself: give it an identity even where git has none (CI).
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1",
                GIT_AUTHOR_NAME="srlrfr-ci", GIT_AUTHOR_EMAIL="ci@localhost",
                GIT_COMMITTER_NAME="srlrfr-ci", GIT_COMMITTER_EMAIL="ci@localhost", **extra)


def run_cmd(cmd: list[str], cwd: Path, timeout: int = 1200) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=run_env(), capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        logs = "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in sorted((cwd / "logs").glob("*.log"))[-4:]) \
            if (cwd / "logs").is_dir() else ""
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n"
                             f"{out.stderr[-6000:]}{logs}")
    return out.stdout


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("sample data (../shared/data or $SRLRFR_SHARED_DATA) not present")
    return path


def preset_params(repo_root: Path, shared_data: Path, *overlays: str) -> dict:
    """params.yaml merged with the given overlays, its data pointed at the sample data."""
    from srlrfr import config as params
    cfg = yaml.safe_load((repo_root / "params.yaml").read_text())
    for overlay in overlays:
        cfg = params.deep_merge(cfg, yaml.safe_load((repo_root / overlay).read_text()))
    cfg["data"]["lfw"]["images"] = str(shared_data / "lfw-fold1" / "images")
    cfg["data"]["lfw"]["pairs"] = str(shared_data / "lfw-fold1" / "pairs.txt")
    cfg["data"]["celeba"]["source"] = str(shared_data / "celeba-sample")
    return cfg


def make_smoke_repo(work: Path, repo_root: Path, shared_data: Path) -> Path:
    """A git repository holding this checkout's files and the smoke params."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=repo_root,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = repo_root / rel
        if src.is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / rel)
    smoke = preset_params(repo_root, shared_data, ".test/params.yaml")
    (work / "params.yaml").write_text(yaml.safe_dump(smoke, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "smoke"]):
        run_cmd(cmd, work)
    return work


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory, repo_root: Path, shared_data: Path) -> Path:
    """The smoke repository before anything ran; its dry run is kept in ``../dry_run.txt``."""
    work = make_smoke_repo(tmp_path_factory.mktemp("e2e") / "repo", repo_root, shared_data)
    (work.parent / "dry_run.txt").write_text(run_cmd([str(BIN / "snakemake"), "-n", "all"], work))
    return work


@pytest.fixture(scope="session")
def smoke_run(smoke_repo: Path) -> Path:
    """``snakemake all`` once; a copy of the finished repository is kept as ``smoke_reference``."""
    run_cmd([str(BIN / "snakemake"), "--cores", "2", "all"], smoke_repo, timeout=2400)
    shutil.copytree(smoke_repo, smoke_repo.parent / "reference", symlinks=True,
                    ignore=shutil.ignore_patterns(".git"))
    return smoke_repo


@pytest.fixture(scope="session")
def smoke_reference(smoke_run: Path) -> Path:
    """The uninterrupted smoke run's files (read-only by convention), safe from later DVC experiments."""
    return smoke_run.parent / "reference"
