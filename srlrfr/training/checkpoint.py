"""Resumable training state and the loss log.

The whole state (model, optimiser, scheduler, scaler, RNG states, step, run
config) goes into ``checkpoint.pt`` atomically; the log rows up to that step
are fsynced first, so a killed run resumes to the same weights and the same
log. A checkpoint whose run config differs is refused, or set aside under
another name when the pipeline reran the job because its params changed.
"""
from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

from ..atomic import atomic_path, save_torch
from ..models.weights import load_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOG = "train_log.csv"
LOG_COLUMNS = ("step", "lr", "loss_pixel", "loss_identity", "loss_total")
STALE_POLICIES = ("error", "set_aside")


def config_mismatch(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in keys
            if saved.get(k) != current.get(k)]


def load_resumable(out_dir: Path, config: dict, stale: str = "error") -> dict | None:
    """The saved state of this same run, or None to start afresh."""
    if stale not in STALE_POLICIES:
        raise ValueError(f"stale_checkpoint must be one of {STALE_POLICIES}, got {stale!r}")
    path = out_dir / CHECKPOINT
    if not path.exists():
        return None
    state = load_checkpoint(path)
    diffs = config_mismatch(state.get("config", {}), config)
    if not diffs:
        return state
    if stale == "set_aside":
        aside = path.with_name(f"checkpoint.stale-{int(time.time())}.pt")
        path.rename(aside)
        log.warning("%s belongs to a different run (%s); moved to %s, training from scratch",
                    path, "; ".join(diffs), aside.name)
        return None
    raise ValueError(f"{path} belongs to a different run; refusing to resume. Differences:\n  "
                     + "\n  ".join(diffs) + f"\nUse another out_dir or delete {path}.")


def save_state(out_dir: Path, state: dict) -> None:
    save_torch(out_dir / CHECKPOINT, state)


class LossLog:
    """``train_log.csv``: one row every ``log_every`` steps, trimmed to the resumed step.

    The identity column is empty when lambda = 0 (the term is not computed).
    """

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows: list[list[str]] = []
        if resume_step > 0 and path.exists():
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(LOG_COLUMNS)
            writer.writerows(rows)
        self.fh = open(path, "a", newline="")
        self.writer = csv.writer(self.fh)

    def write(self, step: int, lr: float, losses: dict[str, float]) -> None:
        ident = losses["loss_identity"]
        self.writer.writerow([step, repr(lr), repr(losses["loss_pixel"]),
                              "" if ident is None else repr(ident), repr(losses["loss_total"])])

    def sync(self) -> None:
        """Rows so far survive a kill (called before each checkpoint)."""
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()
