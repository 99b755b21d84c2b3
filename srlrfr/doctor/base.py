"""What every doctor check returns, and the small helpers they share."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..paths import resolve

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"
FIX_LOCK = "pip install -r requirements.lock (docs/install.md)"


@dataclass(frozen=True)
class Check:
    section: str                 # environment | gpu | data | network | disk
    name: str                    # what was checked: a params key where there is one
    status: str                  # OK, INFO, WARN or FAIL (FAIL: the run cannot succeed)
    detail: str                  # what was found
    fix: str = ""                # what to do about a WARN or FAIL


def human(n: float) -> str:
    """Bytes in decimal units, e.g. 1.4 GB."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit in ("B", "KB") else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def params_path(root: Path, value: str) -> Path:
    """A path from params.yaml, as the steps resolve it (srlrfr.paths): relative ones join ``root``."""
    return resolve(value, root)
