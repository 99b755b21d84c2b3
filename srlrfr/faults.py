"""Named pause points, so a fault test can kill a step at a known place (tests/test_faults.py).

``SRLRFR_PAUSE_AT=<point>[#n]`` makes the process stop the n-th time (default
the first) it reaches ``pause_point(<point>)``: it writes its pid to
``SRLRFR_PAUSE_FILE`` and sleeps until killed. Unset (always, outside the
tests), a pause point is one dictionary lookup.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

_seen: dict[str, int] = {}


def pause_point(name: str) -> None:
    target = os.environ.get("SRLRFR_PAUSE_AT")
    if not target:
        return
    point, _, nth = target.partition("#")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != int(nth or 1):
        return
    marker = os.environ.get("SRLRFR_PAUSE_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()}\n")
    while True:  # the test kills us here
        time.sleep(60)
