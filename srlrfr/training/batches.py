"""Batches prepared ahead of the step, so that a GPU step never waits on data.

A step's random choices (its scale k from ``np_rng``, its flips from
``torch_rng``) are drawn in the main thread in step order, as the synchronous
loop drew them, and each draw keeps the generators' states after it: the
checkpoint of step s saves the states of draw s, so a resumed run draws s+1
next however far ahead batches were prepared. One worker thread gathers the
rows (positional reads, which release the GIL), flips them and, for a GPU,
pins them; the main thread then copies them with ``non_blocking``. Flipping
the uint8 rows before conversion gives the same values as flipping after it,
so training is bit-identical to the synchronous loop on the CPU.

Data-parallel ranks draw the whole global batch and each assembles its slice.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.srnet import to_tensor
from .hr_features import lookup
from .pyramid import SCALE_EXPONENTS, SR_SCALE, BatchSampler, PyramidData


@dataclass
class Draw:
    """What the generators decided for one step, and their states after deciding it."""
    step: int
    k: int
    idx: np.ndarray
    flip: np.ndarray
    rng_state: dict = field(repr=False)


@dataclass(frozen=True)
class Placement:
    """Where a stream's batches go: this rank's ``shard`` of each, pinned (``pin``) for a GPU,
    ``depth`` of them prepared ahead (0: in the main thread, when asked). No shard: the whole batch."""
    shard: slice | None = None
    pin: bool = False
    depth: int = 2


class BatchStream:
    """``next()`` gives (draw, host batch) for each step of ``steps`` in order, prepared ahead as ``placement`` says.

    A host batch maps "input" (the 1/2^k level, degraded), "target" (1/2^(k-2), clean) and, with
    ``identity``, "hr" (full size) to uint8 NHWC tensors of this rank's slice. Given
    ``hr_features`` (srlrfr.training.hr_features.hr_feature_table), "hr_features" replaces
    "hr": the FNet features of those crops, as drawn (flipped or not).
    """

    def __init__(self, data: PyramidData, sampler: BatchSampler, np_rng: np.random.Generator,
                 torch_rng: torch.Generator, *, steps: range, identity: bool,
                 hr_features: torch.Tensor | None = None, placement: Placement = Placement()):
        self.data, self.sampler, self.np_rng, self.torch_rng = data, sampler, np_rng, torch_rng
        self.hr_features = hr_features
        self.identity, self.pin = identity, placement.pin
        self.shard = slice(None) if placement.shard is None else placement.shard
        self.next_step, self.last, self.depth = steps.start, steps.stop - 1, placement.depth
        self.pending: deque[tuple[Draw, Future | None]] = deque()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="srlrfr-batches") if self.depth > 0 else None
        self.wait_s = 0.0  # main thread's time blocked on data

    def _draw(self, step: int) -> Draw:
        k = int(self.np_rng.choice(SCALE_EXPONENTS))
        idx = self.data.usable[self.sampler.indices(step - 1)]  # sampler positions -> usable rows
        flip = (torch.rand(self.sampler.batch_size, generator=self.torch_rng) < 0.5).numpy()
        return Draw(step, k, idx, flip, {"np_rng": self.np_rng.bit_generator.state,
                                         "torch_rng": self.torch_rng.get_state()})

    def _assemble(self, draw: Draw) -> dict[str, torch.Tensor]:
        idx, flip = draw.idx[self.shard], draw.flip[self.shard, None, None, None]

        def level(factor: int, degraded: bool = False) -> torch.Tensor:
            x = (self.data.gather_input if degraded else self.data.gather)(factor, idx)
            t = torch.from_numpy(np.where(flip, x[:, :, ::-1], x))  # same flip at every scale
            return t.pin_memory() if self.pin else t

        # degraded input, clean target: the SRNet learns to undo the degradation
        batch = {"input": level(2 ** draw.k, degraded=True), "target": level(2 ** draw.k // SR_SCALE)}
        if self.identity and self.hr_features is not None:
            feats = lookup(self.hr_features, idx, draw.flip[self.shard])
            batch["hr_features"] = feats.pin_memory() if self.pin else feats
        elif self.identity:
            batch["hr"] = level(1)
        return batch

    def _fill(self) -> None:
        while self.next_step <= self.last and len(self.pending) < max(self.depth, 1):
            draw = self._draw(self.next_step)
            self.pending.append((draw, self.pool.submit(self._assemble, draw) if self.pool else None))
            self.next_step += 1

    def next(self) -> tuple[Draw, dict[str, torch.Tensor]]:
        self._fill()
        draw, job = self.pending.popleft()
        start = time.perf_counter()
        batch = job.result() if job is not None else self._assemble(draw)
        self.wait_s += time.perf_counter() - start
        self._fill()  # the worker prepares the next ones during this step
        return draw, batch

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Host uint8 images -> float [-1, 1] NCHW on ``device``, features as they are (copies queued,
    not waited for, from pinned memory)."""
    return {k: v.to(device, non_blocking=v.is_pinned()) if v.is_floating_point()
            else to_tensor(v, device, non_blocking=v.is_pinned()) for k, v in batch.items()}
