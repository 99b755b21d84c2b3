"""The last model a training run finished, kept where Snakemake does not delete it.

Snakemake removes a job's outputs before it runs the job again, so a retraining that
fails (diverges, runs out of memory, is stopped) would leave no model.pt at all. After
each successful training a hard link of model.pt (no extra disk) is kept under
``models/previous/`` (the same path below it), which is neither a Snakemake output nor
a DVC out (DVC tracks models/srnets; models/ is git-ignored). A failed run names it and
says how to put it back.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import atomic_path

FOLDER = "previous"


def previous_path(model: str | os.PathLike) -> Path:
    """models/srnets/<fnet>/<name>/model.pt -> models/previous/srnets/<fnet>/<name>/model.pt."""
    model = Path(model)
    parts = model.parts
    if "models" in parts[:-1]:
        top = len(parts) - 1 - parts[::-1].index("models")
        return Path(*parts[:top + 1], FOLDER, *parts[top + 1:])
    return model.parent.with_name(f"{model.parent.name}.{FOLDER}") / model.name  # an out-dir outside models/


def keep(model: str | os.PathLike) -> Path:
    """After a successful training: ``model`` becomes the previous model (replacing the one before)."""
    model, kept = Path(model), previous_path(model)
    with atomic_path(kept) as tmp:
        tmp.unlink()
        try:
            os.link(model, tmp)
        except OSError:  # another filesystem, or links not allowed: a copy
            shutil.copy2(model, tmp)
    return kept


def where_to_find(model: str | os.PathLike) -> str | None:
    """For a failed run: where the last finished model is, when the run left none at ``model``."""
    model, kept = Path(model), previous_path(model)
    if model.exists() or not kept.is_file():
        return None
    return (f"the model of the last finished training is kept at {kept} (Snakemake removed {model} before this "
            f"run). To use it again: cp {kept} {model}; or fix the params and rerun")
