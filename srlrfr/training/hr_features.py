"""FNet features of the full-size training crops, computed once per crop and orientation.

The identity loss compares FNet(SR) with FNet(HR). The FNet is frozen and the
HR crops are fixed, and a step only ever flips a crop horizontally, so the
target feature of a draw is one of two vectors per crop. Computing them once
replaces an FNet forward pass per step (measured in benchmarks/bench_train.py)
and the reading of the full-size rows. The features are those of the live
pass up to floating-point rounding (oneDNN may block a different batch size
differently): tests/test_train.py compares them.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..models.fnet import FaceRecognizer
from ..models.srnet import to_tensor
from .pyramid import PyramidData


def hr_feature_table(fnet: FaceRecognizer, data: PyramidData, device: torch.device, *, batch_size: int = 64,
                     progress: bool = True) -> torch.Tensor:
    """float32 (N, 2, D) on the CPU: [row, 0] = FNet(crop), [row, 1] = FNet(mirrored crop).

    Rows training never draws (``data.usable`` leaves them out) stay zero. Each
    feature is computed in fp32, whatever ``train.amp`` runs the step in.
    """
    table = torch.zeros(len(data), 2, fnet.feature_dim)
    rows = data.usable
    with torch.no_grad(), tqdm(total=len(rows), disable=not progress, desc=f"HR features {fnet.name}",
                               unit="img") as bar:
        for start in range(0, len(rows), batch_size):
            idx = rows[start:start + batch_size]
            x = to_tensor(data.gather(1, idx), device)
            table[idx, 0] = fnet(x).float().cpu()
            table[idx, 1] = fnet(x.flip(-1)).float().cpu()
            bar.update(len(idx))
    return table


def lookup(table: torch.Tensor, idx: np.ndarray, flip: np.ndarray) -> torch.Tensor:
    """(B, D) target features of rows ``idx`` drawn with ``flip`` (bool per row)."""
    return table[torch.from_numpy(np.asarray(idx)), torch.from_numpy(np.asarray(flip).astype(np.int64))]
