"""The reliability counts in README.md and docs/reliability.md are the suite's own, and current.

A session that runs every case of tests/test_faults*.py and tests/test_bad_inputs*.py, all passing,
writes them (tests/conftest.py). Here: both pages show what tests/reliability_counts.json
holds, that file lists exactly the cases those suites have now (a case added or removed
since makes this fail: rerun them), and its counts hold no silent result.
"""
import json
import subprocess
import sys

import pytest
from conftest import BLOCK, RELIABILITY_CASES, RELIABILITY_PAGES, REPO, counts_block, reliability_files

NOT_COUNTED = "```\nnot counted yet\n```\n"  # what the pages show before a session wrote the counts
RERUN = "run pytest tests/test_faults*.py tests/test_bad_inputs*.py"


@pytest.fixture(scope="module")
def recorded() -> dict:
    if not RELIABILITY_CASES.is_file():
        pytest.skip(f"{RELIABILITY_CASES.name} not written yet: {RERUN}")
    return json.loads(RELIABILITY_CASES.read_text())


def test_pages_show_the_recorded_counts():
    """Both pages show the file's counts, or 'not counted yet' where there is no file: never figures by hand."""
    want = counts_block(json.loads(RELIABILITY_CASES.read_text())["counts"]) if RELIABILITY_CASES.is_file() \
        else NOT_COUNTED
    for page in RELIABILITY_PAGES:
        blocks = BLOCK.findall(page.read_text())
        assert len(blocks) == 1 and blocks[0][1] == want, page


def test_recorded_counts_have_no_silent_result(recorded: dict):
    counts = recorded["counts"]
    assert counts["silent results"] == 0
    assert counts["faults injected"] == counts["faults survived"] > 0
    assert counts["bad inputs tried"] >= counts["bad inputs rejected with a clear message"] > 0


def test_recorded_cases_are_the_current_ones(recorded: dict):
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *(f"tests/{f}" for f in reliability_files())], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    current = sorted(line for line in out.stdout.splitlines() if "::" in line)
    assert recorded["cases"] == current, f"the fault or bad-input cases changed since the counts were written: {RERUN}"
