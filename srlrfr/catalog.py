"""Fill every registry: networks and geometries, datasets, resize kernels, degradations, baselines, losses.

Each catalog imports its modules explicitly, so one broken module fails with
its own name rather than hiding behind an auto-import.
"""
from __future__ import annotations


def load_all() -> None:
    from . import methods  # noqa: F401  (baselines)
    from .data import catalog as data_catalog  # noqa: F401
    from .degradation import kernels, models, ops  # noqa: F401
    from .models import catalog as model_catalog  # noqa: F401
    from .training import losses  # noqa: F401
