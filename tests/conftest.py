"""Shared fixtures. ``shared_data`` is the read-only sample data beside the repo
(../shared/data), used exactly as a user's local copy of LFW / CelebA would be."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    env = os.environ.get("SRLRFR_SHARED_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("sample data (../shared/data or $SRLRFR_SHARED_DATA) not present")
    return path
