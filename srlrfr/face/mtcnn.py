"""MTCNN face detector with 5 landmarks (Zhang et al., 2016), in PyTorch.

The three networks are written here; their weights are the original P/R/O-Net
weights as shipped (Keras layout, joblib + lz4) inside the ``mtcnn`` pip
package, which is only read for those files (its TensorFlow code is never
imported).

Weight layout (checked against the files): conv kernels HWIO, dense kernels
(in, out), PReLU alphas (1, 1, C) after convs and (C,) after dense layers.
The Keras R-Net/O-Net permute the last feature map to (W, H, C) before
flattening, so the first dense layer expects that order. These weights take
images in their natural orientation (rows = y) and RGB channel order: the
Caffe-era transposition is baked into the converted kernels (verified on LFW:
eyes land above the nose, left eye at the smaller x).

Coordinates: internally a box [x1, x2) uses pixel edges (pixel i covers
[i, i+1)), which is what ``roi_align(aligned=True)`` samples. Returned boxes
are in the usual pixel-centre convention of OpenCV (pixel i centred at i),
i.e. shifted by -0.5, and not clipped to the image.

Landmarks follow the reference implementations. O-Net gives each point as a
fraction p of the crop it saw. The authors' MATLAB code and TropComplique's
mtcnn-pytorch (with which the published LFW/CelebA landmark files that
``align.landmarks: authors`` reads were made) turn it into pixels as
``first + p * w``: ``first`` the index, i.e. the centre, of the crop's first
pixel, ``w`` the crop's width in pixels. So for a crop [x1, x2) in pixel edges
a point is ``x1 - 0.5 + LANDMARK_SHIFT + p * (x2 - x1)`` with LANDMARK_SHIFT =
0.5: half a pixel right of (below) the purely geometric reading, p = 0 at the
crop's edge, which srlrfr used before (subtract LANDMARK_SHIFT for that).
Measured on the 807 deep-funneled LFW images of the sample fold (the chosen
face, the same face in 806): srlrfr minus TropComplique's detector was
(-0.55, -0.51) px in (x, y) with the geometric reading and is (-0.05, -0.01) px
now. What remains is not a constant but per-image scatter (sd 1.0-1.5 px per
coordinate): the cascades crop differently (TropComplique rounds boxes to
whole pixels, its P-Net windows are 13 px and one scaled pixel off, it
resamples with PIL) and O-Net's points move a little with the crop.
facenet-pytorch writes the same formula but crops from truncated box
coordinates, a crop that starts on average half a pixel left of its box, so
its points sit right of / below these (numbers: benchmarks/bench_mtcnn.py).

Speed (CPU): channels-last networks with fused heads; the image pyramid as
area-averaging ``embedding_bag`` over rows plus a matmul over columns; the
R-Net/O-Net crops as a separable form of roi_align (:func:`roi_resample`).
All of it reproduces the straightforward version to float rounding.

Batch invariance: an image's detections are a function of that image and
the settings, to the last bit, whatever other images share its call and in
which order. Float rounding depends on the shapes the kernels see (PyTorch
and oneDNN pick algorithms by batch size: P-Net scores moved by ~1e-6, enough
to flip near-ties in NMS and move points by pixels). So every net runs on a
fixed batch shape, the last batch padded with zeros (:attr:`MTCNN.PNET_BATCH`
images, R-/O-Net crops in batches of RNET_BATCH / ONET_BATCH; measured: a
row's result then depends neither on its place in the batch nor on the other
rows), CPU convolutions always go to oneDNN, and NMS runs image by image with
stable sorts. Sizes: each image's pyramid is computed alone, at its own size;
for P-Net each level is zero-padded at the bottom/right into the level of its
bucket (:func:`pnet_bucket`, the image's size rounded up to PNET_BUCKET px, a
function of the image alone), so that images of one bucket share P-Net
batches; conv1's outputs past the image are set to -inf (the unpadded pool's
edge) and windows past it dropped. Inside the image, P-Net's outputs are then
those of the unpadded level (box regression to the bit, face probability to
~1 ulp: softmax's vectorised vs scalar exp; tests/test_mtcnn.py). R-/O-Net
crops come from unpadded per-size stacks (roi_align's border rule). The cost
is the padding: a bucket's last P-Net batch is filled with zero images
(srlrfr.face.detect.detect_landmarks therefore goes bucket by bucket).
"""
from __future__ import annotations

import functools
import importlib.util
import math
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import nms, roi_align

NETS = ("pnet", "rnet", "onet")
LANDMARK_SHIFT = 0.5  # px: reference landmark convention minus the geometric one (module doc)


@dataclass
class Detections:
    """Faces found in one image, best score first (pixel-centre coordinates, see module doc)."""
    boxes: np.ndarray      # (K, 4) float32 x1, y1, x2, y2
    scores: np.ndarray     # (K,) float32 O-Net face probability
    landmarks: np.ndarray  # (K, 5, 2) float32: left eye, right eye, nose, left mouth, right mouth

    def __len__(self) -> int:
        return len(self.scores)


# ----------------------------------------------------------------------------- weights

def weights_dir() -> Path:
    """Folder holding pnet/rnet/onet.lz4 inside the installed ``mtcnn`` package."""
    spec = importlib.util.find_spec("mtcnn")  # locates the package without importing it (TF)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'mtcnn' pip package (source of the MTCNN weights) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"
    if not path.is_dir():
        raise FileNotFoundError(f"MTCNN weight folder not found: {path}")
    return path


def load_keras_weights(name: str, folder: Path | None = None) -> list[np.ndarray]:
    path = (folder or weights_dir()) / f"{name}.lz4"
    if not path.is_file():
        raise FileNotFoundError(f"MTCNN weight file not found: {path}")
    arrays = joblib.load(path)
    if not isinstance(arrays, list) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise ValueError(f"{path}: expected a list of numpy arrays, got {type(arrays).__name__}")
    return arrays


def _conv(w: np.ndarray, b: np.ndarray) -> dict[str, torch.Tensor]:
    return {"weight": torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))),  # HWIO -> OIHW
            "bias": torch.from_numpy(b)}


def _dense(w: np.ndarray, b: np.ndarray) -> dict[str, torch.Tensor]:
    return {"weight": torch.from_numpy(np.ascontiguousarray(w.T)), "bias": torch.from_numpy(b)}


def _prelu(a: np.ndarray) -> dict[str, torch.Tensor]:
    return {"weight": torch.from_numpy(np.ascontiguousarray(a.reshape(-1)))}


def _load_layers(net: nn.Module, arrays: list[np.ndarray], kinds: list[tuple[str, str]], name: str) -> None:
    """Copy Keras arrays into ``net``'s layers in order; ``kinds`` = [(attr, conv|dense|prelu)]."""
    state: dict[str, torch.Tensor] = {}
    it = iter(arrays)
    try:
        for attr, kind in kinds:
            params = {"conv": lambda: _conv(next(it), next(it)),
                      "dense": lambda: _dense(next(it), next(it)),
                      "prelu": lambda: _prelu(next(it))}[kind]()
            state.update({f"{attr}.{k}": v for k, v in params.items()})
    except StopIteration:
        raise ValueError(f"{name}: weight file has {len(arrays)} arrays, too few for the network") from None
    if next(it, None) is not None:
        raise ValueError(f"{name}: weight file has {len(arrays)} arrays, more than the network uses")
    own = net.state_dict()
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ValueError(f"{name}.{key}: weight shape {tuple(value.shape)} != layer shape {tuple(own[key].shape)}")
    net.load_state_dict(state, strict=True)


# ----------------------------------------------------------------------------- networks
# Inputs are pixel values (0..255). The forward passes are written for speed on
# CPU: channels-last tensors (oneDNN's fast path; NCHW max pooling is several
# times slower), input normalisation folded into conv1, each net's output heads
# fused into one conv/matmul, and P-Net's 2x2 pool as strided maxima.

def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    """Flatten NCHW in Keras' post-Permute((2,1,3)) order: (W, H, C), C fastest."""
    return x.permute(0, 3, 2, 1).flatten(1)


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(x, 2, 2, ceil_mode=True)`` as three elementwise maxima (faster on CPU)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                         torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def _conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Unpadded stride-1 convolution. On CPU always oneDNN's: ``F.conv2d`` picks another backend for
    some batch sizes (one image, or fewer than 16 with a 1x1 kernel on one thread), whose sums round
    differently, and it is the faster one for these small layers anyway."""
    if x.device.type == "cpu" and torch.backends.mkldnn.is_available():
        return torch.mkldnn_convolution(x, weight, bias, [0, 0], [1, 1], [1, 1], 1)
    return F.conv2d(x, weight, bias)


def _conv_on_pixels(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv((x - 127.5) / 128)`` for pixel values x: the nets' input normalisation folded into
    their first (unpadded) convolution, which saves a pass over every input."""
    w = conv.weight * 0.0078125
    return _conv2d(x, w, conv.bias - 127.5 * w.sum(dim=(1, 2, 3)))


def _heads(x: torch.Tensor, *layers: nn.Module) -> torch.Tensor:
    """All output layers (same input) in one conv / matmul, outputs concatenated."""
    w = torch.cat([m.weight for m in layers])
    b = torch.cat([m.bias for m in layers])
    return _conv2d(x, w, b) if w.ndim == 4 else F.linear(x, w, b)


class PNet(nn.Module):
    """Fully convolutional proposal net: 12x12 window, stride 2."""
    LAYERS = [("conv1", "conv"), ("prelu1", "prelu"), ("conv2", "conv"), ("prelu2", "prelu"),
              ("conv3", "conv"), ("prelu3", "prelu"), ("conv4_1", "conv"), ("conv4_2", "conv")]

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 4, 1)  # box regression
        self.conv4_2 = nn.Conv2d(32, 2, 1)  # face / not-face

    def forward(self, x: torch.Tensor, extents: list[tuple[int, int]] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``extents``: each row's image (h, w) in the top-left of a zero-padded ``x``. conv1's outputs
        past an image are set to -inf, so the 2x2 pool at its odd edge sees what it would see in an
        unpadded input; outputs (h, w) whose window lies in the image are then those of the image alone."""
        x = self.prelu1(_conv_on_pixels(self.conv1, x))
        for row, (h, w) in enumerate(extents or []):
            x[row, :, h - 2:] = float("-inf")
            x[row, :, :, w - 2:] = float("-inf")
        x = _max_pool_2x2(x)  # Keras 'same' == Caffe ceil mode
        x = self.prelu2(_conv2d(x, self.conv2.weight, self.conv2.bias))
        x = self.prelu3(_conv2d(x, self.conv3.weight, self.conv3.bias))
        out = _heads(x, self.conv4_1, self.conv4_2)
        return out[:, :4], F.softmax(out[:, 4:], dim=1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""
    LAYERS = [("conv1", "conv"), ("prelu1", "prelu"), ("conv2", "conv"), ("prelu2", "prelu"),
              ("conv3", "conv"), ("prelu3", "prelu"), ("fc4", "dense"), ("prelu4", "prelu"),
              ("fc5_1", "dense"), ("fc5_2", "dense")]

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.fc5_1 = nn.Linear(128, 4)
        self.fc5_2 = nn.Linear(128, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(_conv_on_pixels(self.conv1, x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu3(self.conv3(x))
        out = _heads(self.prelu4(self.fc4(_flatten_whc(x))), self.fc5_1, self.fc5_2)
        return out[:, :4], F.softmax(out[:, 4:], dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops: box regression, 5 landmarks, face score."""
    LAYERS = [("conv1", "conv"), ("prelu1", "prelu"), ("conv2", "conv"), ("prelu2", "prelu"),
              ("conv3", "conv"), ("prelu3", "prelu"), ("conv4", "conv"), ("prelu4", "prelu"),
              ("fc5", "dense"), ("prelu5", "prelu"), ("fc6_1", "dense"), ("fc6_2", "dense"),
              ("fc6_3", "dense")]

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.fc6_1 = nn.Linear(256, 4)   # box regression
        self.fc6_2 = nn.Linear(256, 10)  # landmarks: x1..x5 then y1..y5, relative to the crop
        self.fc6_3 = nn.Linear(256, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(_conv_on_pixels(self.conv1, x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        out = _heads(self.prelu5(self.fc5(_flatten_whc(x))), self.fc6_1, self.fc6_2, self.fc6_3)
        return out[:, :4], out[:, 4:14], F.softmax(out[:, 14:], dim=1)


def load_nets(folder: Path | None = None) -> tuple[PNet, RNet, ONet]:
    """The three networks with the shipped weights, in eval mode."""
    nets = (PNet(), RNet(), ONet())
    for name, net in zip(NETS, nets):
        _load_layers(net, load_keras_weights(name, folder), net.LAYERS, name)
        net.eval().requires_grad_(False)
    return nets


# ----------------------------------------------------------------------------- box helpers

def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (side = longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the nets' box regression: offsets are fractions of the box width/height."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + offsets * torch.stack([w, h, w, h], dim=1)


def _points_to_pixels(boxes: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """O-Net points (K, 10): x1..x5, y1..y5 as fractions of the crop ``boxes`` (pixel edges)
    -> (K, 5, 2) pixel-centre image coordinates in the reference convention (module doc)."""
    size = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
    return boxes[:, None, :2] - 0.5 + LANDMARK_SHIFT + torch.stack([rel[:, :5], rel[:, 5:]], dim=2) * size


def _nms_each(boxes: torch.Tensor, scores: torch.Tensor, idx: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy IoU NMS within each image (``idx``), image by image; kept indices grouped by image.

    Not torchvision's ``batched_nms``: that one shifts each image's boxes by a
    multiple of the batch's largest coordinate, which rounds them, and so the
    overlaps of near-ties, differently in each batch.
    """
    order = torch.argsort(idx, stable=True)  # each image's boxes keep their order
    counts = torch.bincount(idx[order]).tolist() if len(idx) else []
    keep = [sel[nms(boxes[sel], scores[sel], threshold)] for sel in order.split(counts) if len(sel)]
    return torch.cat(keep) if keep else order


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, idx: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with overlap = intersection / smaller area (the final MTCNN stage).

    Suppresses a small box nested in a bigger one, which IoU would keep. Few boxes
    are left at this point, so a plain loop is fine.
    """
    order = torch.argsort(scores, descending=True, stable=True)  # ties: the image's own order
    b, i = boxes[order], idx[order]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    overlap = inter / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-9)
    suppress = (overlap > threshold) & (i[:, None] == i[None, :])
    keep, dead = [], torch.zeros(len(b), dtype=torch.bool)
    suppress = suppress.cpu()
    for k in range(len(b)):
        if not dead[k]:
            keep.append(k)
            dead |= suppress[k]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


# ----------------------------------------------------------------------------- resampling

def _area_bins(n_in: int, n_out: int) -> tuple[list[int], list[int]]:
    """Bins [start, end) of ``F.interpolate(mode='area')`` (adaptive average pooling), one axis."""
    return ([(i * n_in) // n_out for i in range(n_out)],
            [-((-(i + 1) * n_in) // n_out) for i in range(n_out)])


@functools.lru_cache(maxsize=32)
def _area_bags(n_in: int, sizes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Input indices and bag offsets averaging n_in samples down to each of ``sizes``, concatenated."""
    idx, offsets = [], []
    for n_out in sizes:
        for a, b in zip(*_area_bins(n_in, n_out)):
            offsets.append(len(idx))
            idx.extend(range(a, b))
    return torch.tensor(idx), torch.tensor(offsets)


@functools.lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) matrix of the same 1-D area resampling."""
    start, end = (torch.tensor(t)[:, None] for t in _area_bins(n_in, n_out))
    j = torch.arange(n_in)
    return (((j >= start) & (j < end)) / (end - start)).to(torch.float32).to(device)


def area_pyramid(images: torch.Tensor, sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """``F.interpolate(images, size, mode='area')`` for each (h, w) in ``sizes``, to float rounding.

    Area resampling is separable: the rows of all levels come from one
    ``embedding_bag`` (mean of each bin's rows, every level at once), then one
    matmul per level averages the columns; adaptive pooling itself is several
    times slower on CPU.
    """
    n, c, height, width = images.shape
    idx, offsets = (t.to(images.device) for t in _area_bags(height, tuple(h for h, _ in sizes)))
    planes = torch.arange(n * c, device=images.device)[:, None]
    rows = F.embedding_bag((planes * height + idx).reshape(-1), images.reshape(n * c * height, width),
                           (planes * len(idx) + offsets).reshape(-1), mode="mean").view(n, c, -1, width)
    out, top = [], 0
    for h, w in sizes:
        out.append(rows[:, :, top:top + h] @ _area_matrix(width, w, images.device).T)
        top += h
    return out


def _sample_taps(lo: np.ndarray, hi: np.ndarray, size: int, n: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis of ``roi_align(aligned=True, sampling_ratio=-1)`` for boxes [lo, hi) in pixel edges.

    Each of the ``size`` bins averages ``ceil((hi - lo) / size)`` bilinear samples
    (boxes here all have at most ``g``; unused slots get weight 0). Returns the
    two pixel taps per sample and their weights, already divided by the sample
    count: (K, size, 2g) int64 and float32. roi_align's edge rules: a sample
    more than one pixel outside the image is zero, one within a pixel of it is
    clamped to the border pixel. float32 like roi_align; numpy because these
    small arrays are bookkeeping, not worth a thread team each.
    """
    lo, hi = lo[:, None, None], hi[:, None, None]
    count = np.ceil((hi - lo) / np.float32(size))  # <= 0 for an empty box: no samples
    step = (hi - lo) / np.float32(size)
    pos = (lo - np.float32(0.5)) + np.arange(size, dtype=np.float32)[:, None] * step \
        + (np.arange(g, dtype=np.float32) + np.float32(0.5)) * (step / np.maximum(count, 1))
    weight = ((np.arange(g) < count) & (pos >= -1) & (pos <= n)) / np.maximum(count, 1)
    pos = np.clip(pos, 0, n - 1)
    low = np.floor(pos)
    high_weight = (pos - low) * weight
    low = low.astype(np.int64)
    return (np.concatenate([low, np.minimum(low + 1, n - 1)], axis=2),
            np.concatenate([weight - high_weight, high_weight], axis=2).astype(np.float32))


def _slices(sorted_counts: np.ndarray, most: int) -> list[slice]:
    """Cut ascending per-box sample counts into slices of at most ``most`` boxes, where the largest
    count is at most 1.5x the smallest: little padding, yet few (thread-pool bound) operations."""
    out, start = [], 0
    for k in range(1, len(sorted_counts) + 1):
        if k == len(sorted_counts) or k - start == most or sorted_counts[k] > 1.5 * max(sorted_counts[start], 1):
            out.append(slice(start, k))
            start = k
    return out


def roi_resample(canvas: torch.Tensor, boxes: torch.Tensor, idx: torch.Tensor, size: int) -> torch.Tensor:
    """``roi_align(canvas, [idx, boxes], size, 1.0, -1, aligned=True)`` on CPU, computed separably.

    roi_align averages bilinear samples on a grid, which factors into (row
    weights) x image x (column weights): each crop is a weighted sum of a few
    image rows (``embedding_bag``) followed by a small matmul over columns.
    That is about half the CPU time of torchvision's kernel (which also uses one
    core only); results agree to float rounding (~1e-4 on 0..255 values).
    Boxes go sorted by samples per bin, in slices (:func:`_slices`); a slice's
    bags get as many taps as its largest box needs.
    """
    n, c, height, width = canvas.shape
    if len(boxes) == 0:
        return canvas.new_zeros((0, c, size, size))
    rows = canvas.reshape(n * c * height, width)
    b_all, i_all = boxes.numpy().astype(np.float32), idx.numpy()
    per_bin = np.maximum(np.ceil((b_all[:, 3] - b_all[:, 1]) / np.float32(size)), 0).astype(np.int64)
    order = np.argsort(per_bin, kind="stable")
    parts = []
    for sel in _slices(per_bin[order], max(1, (1 << 22) // (c * size * width))):
        sel = order[sel]
        b, k, g = b_all[sel], len(sel), max(1, int(per_bin[sel[-1]]))
        ty, wy = _sample_taps(b[:, 1], b[:, 3], size, height, g)
        bags = (i_all[sel, None] * c + np.arange(c))[:, :, None, None] * height + ty[:, None]  # (k, c, size, 2g)
        part = F.embedding_bag(torch.from_numpy(bags.reshape(-1, 2 * g)), rows, mode="sum",
                               per_sample_weights=torch.from_numpy(np.repeat(wy, c, axis=0).reshape(-1, 2 * g)))
        gx = max(1, math.ceil(float((b[:, 2] - b[:, 0]).max()) / size))
        tx, wx = _sample_taps(b[:, 0], b[:, 2], size, width, gx)
        cells = (np.arange(k * size).reshape(k, size, 1) * width + tx).ravel()
        cols = np.bincount(cells, weights=wx.ravel(), minlength=k * size * width).astype(np.float32)
        cols = torch.from_numpy(cols).view(k, size, width)
        parts.append(torch.bmm(part.view(k, c * size, width), cols.transpose(1, 2)).view(k, c, size, size))
    return torch.cat(parts)[torch.from_numpy(np.argsort(order))]


# ----------------------------------------------------------------------------- detector

def _check_images(images: list[np.ndarray]) -> None:
    for k, img in enumerate(images):
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"image {k}: expected a uint8 RGB array (H, W, 3), got {got}")


PNET_BUCKET = 64  # px


def pnet_bucket(height: int, width: int) -> tuple[int, int]:
    """The canvas (height, width) an image's P-Net levels are zero-padded into: its size rounded up to
    a multiple of PNET_BUCKET, a function of the image alone. Images of one bucket share P-Net
    batches (module doc)."""
    return -(-height // PNET_BUCKET) * PNET_BUCKET, -(-width // PNET_BUCKET) * PNET_BUCKET


def _padded(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``n`` rows (a fixed batch shape, see the module doc)."""
    if len(x) == n:
        return x
    return torch.cat([x, x.new_zeros((n - len(x), *x.shape[1:]))])


@dataclass
class _Stacks:
    """A detect call's images as float tensors, one stack per image size. Unpadded, so that an image's
    crops (roi_align's border rule) never depend on the sizes of the other images."""
    canvases: list[torch.Tensor]  # (n, 3, h, w) per size
    members: list[torch.Tensor]   # each stack's image numbers in the call
    stack: torch.Tensor           # (N,) the stack holding each image
    slot: torch.Tensor            # (N,) its place in that stack

    @classmethod
    def of(cls, images: list[np.ndarray], device: torch.device) -> "_Stacks":
        groups: dict[tuple[int, int], list[int]] = {}
        for k, img in enumerate(images):
            groups.setdefault(img.shape[:2], []).append(k)
        stack, slot = torch.zeros(len(images), dtype=torch.long), torch.zeros(len(images), dtype=torch.long)
        canvases, members = [], []
        for g, ks in enumerate(groups.values()):
            pixels = torch.from_numpy(np.stack([images[k] for k in ks])).to(device)
            canvases.append(pixels.permute(0, 3, 1, 2).to(torch.float32).contiguous())
            members.append(torch.as_tensor(ks, device=device))
            stack[ks], slot[ks] = g, torch.arange(len(ks))
        return cls(canvases, members, stack.to(device), slot.to(device))


class MTCNN:
    """Batched MTCNN: P-Net over an image pyramid, then R-Net and O-Net on all crops at once.

    ``images`` for :meth:`detect` are uint8 RGB (H, W, 3) arrays; sizes may differ.
    An image's detections depend on that image alone, not on the others in the
    call nor on their order (module doc). Set ``stage_seconds = {}`` to
    accumulate wall time per stage (benchmarks).
    """

    STRIDE, CELL = 2, 12
    NMS_SCALE, NMS_PNET, NMS_RNET, NMS_ONET = 0.5, 0.7, 0.7, 0.7
    # Fixed batch shapes (images for P-Net, crops for R-/O-Net), the last batch padded with zeros:
    # the same shape runs the same kernels, so a result never depends on the batch it came in.
    PNET_BATCH, RNET_BATCH, ONET_BATCH = 4, 256, 64

    def __init__(self, device: str | torch.device = "cpu", min_face_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), scale_factor: float = 0.709,
                 weights_folder: Path | None = None):
        if min_face_size < 1:
            raise ValueError(f"min_face_size must be >= 1, got {min_face_size}")
        if not 0 < scale_factor < 1:
            raise ValueError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
            raise ValueError(f"thresholds must be three probabilities, got {thresholds}")
        self.device = torch.device(device)
        self.min_face_size, self.thresholds, self.scale_factor = min_face_size, tuple(thresholds), scale_factor
        self.pnet, self.rnet, self.onet = (n.to(self.device, memory_format=torch.channels_last)
                                           for n in load_nets(weights_folder))
        self.stage_seconds: dict[str, float] | None = None
        self._clock = 0.0

    def _lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage`` (only when stage_seconds is a dict)."""
        if self.stage_seconds is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + now - self._clock
        self._clock = now

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the smallest face maps to the 12-px P-Net window, down to a 12-px image."""
        scale = self.CELL / self.min_face_size
        out, side = [], min(height, width) * scale
        while side >= self.CELL:
            out.append(scale * self.scale_factor ** len(out))
            side *= self.scale_factor
        return out

    def _pnet_buckets(self, stacks: _Stacks) -> dict[tuple[int, int], list[tuple[int, int, int, list]]]:
        """Each image's own pyramid (batch of one, its exact size), filed under its P-Net bucket:
        bucket -> [(image number, height, width, levels)] in call order."""
        buckets: dict[tuple[int, int], list[tuple[int, int, int, list]]] = {}
        for canvas, members in zip(stacks.canvases, stacks.members):
            height, width = canvas.shape[-2:]
            sizes = [(math.ceil(height * s), math.ceil(width * s)) for s in self.scales(height, width)]
            for slot, k in enumerate(members.tolist()):
                levels = area_pyramid(canvas[slot:slot + 1], sizes) if sizes else []
                buckets.setdefault(pnet_bucket(height, width), []).append((k, height, width, levels))
        self._lap("pyramid")
        return buckets

    def _proposals(self, batch: list[tuple[int, int, int, list]], level: int, shape: tuple[int, int]
                   ) -> tuple[torch.Tensor, ...]:
        """P-Net on level ``level`` of the images in ``batch`` (at most PNET_BATCH), each zero-padded
        to ``shape`` and the batch to PNET_BATCH images: window boxes, scores, image numbers, box
        regression. Windows past an image's own level are dropped (see :meth:`PNet.forward`)."""
        x = batch[0][3][level].new_zeros((self.PNET_BATCH, 3, *shape))
        extents = [e[3][level].shape[-2:] for e in batch]
        for row, (entry, (h, w)) in enumerate(zip(batch, extents)):
            x[row, :, :h, :w] = entry[3][level][0]
        reg, prob = self.pnet(x.contiguous(memory_format=torch.channels_last), extents)
        valid = torch.zeros(prob.shape[0], *prob.shape[2:], dtype=torch.bool, device=prob.device)
        for row, (h, w) in enumerate(extents):  # P-Net's output size on an unpadded h x w input
            valid[row, :math.ceil((h - 2) / 2) - 4, :math.ceil((w - 2) / 2) - 4] = True
        im, yy, xx = torch.nonzero((prob[:, 1] > self.thresholds[0]) & valid, as_tuple=True)
        # actual per-axis scale after rounding, per image
        scale = torch.tensor([[w / e[2], h / e[1]] * 2 for e, (h, w) in zip(batch, extents)], device=prob.device)
        cell = torch.stack([xx, yy, xx, yy], dim=1).float() * self.STRIDE
        cell[:, 2:] += self.CELL
        b, s = cell / scale[im], prob[im, 1, yy, xx]
        keep = _nms_each(b, s, im, self.NMS_SCALE)
        numbers = torch.as_tensor([e[0] for e in batch], dtype=torch.long, device=prob.device)
        return b[keep], s[keep], numbers[im[keep]], reg[im[keep], :, yy[keep], xx[keep]]

    def _stage_pnet(self, stacks: _Stacks) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared, regressed P-Net candidates of all images and their image numbers. Images of a
        bucket share P-Net batches, level by level (every image's scales are a prefix of the
        bucket's, the same numbers)."""
        empty = stacks.canvases[0].new_zeros((0, 4))
        parts = [(empty, empty[:, 0], torch.zeros(0, dtype=torch.long, device=empty.device), empty)]
        for (bh, bw), entries in self._pnet_buckets(stacks).items():
            for level, s in enumerate(self.scales(bh, bw)):
                todo = [e for e in entries if len(e[3]) > level]
                for start in range(0, len(todo), self.PNET_BATCH):
                    parts.append(self._proposals(todo[start:start + self.PNET_BATCH], level,
                                                 (math.ceil(bh * s), math.ceil(bw * s))))
        boxes, scores, idx, reg = (torch.cat(p) for p in zip(*parts))
        keep = _nms_each(boxes, scores, idx, self.NMS_PNET)
        self._lap("pnet")
        return _square(_regress(boxes[keep], reg[keep])), idx[keep]

    def _crops(self, stacks: _Stacks, boxes: torch.Tensor, idx: torch.Tensor, size: int) -> torch.Tensor:
        """Resample each box of image ``idx`` to size x size (channels-last); outside the image is black."""
        crops = boxes.new_zeros((len(boxes), 3, size, size))
        for g, canvas in enumerate(stacks.canvases):
            sel = torch.nonzero(stacks.stack[idx] == g).flatten()
            if len(sel) == 0:
                continue
            b, i = boxes[sel], stacks.slot[idx[sel]]
            if canvas.device.type == "cpu":
                crops[sel] = roi_resample(canvas, b, i, size)
            else:  # one fused kernel there
                rois = torch.cat([i[:, None].to(b.dtype), b], dim=1)
                crops[sel] = roi_align(canvas, rois, size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        return crops.contiguous(memory_format=torch.channels_last)

    def _run(self, net: nn.Module, stage: str, stacks: _Stacks, boxes: torch.Tensor, idx: torch.Tensor,
             size: int) -> list[torch.Tensor]:
        """``net`` on the size x size crops of all boxes, in fixed-size batches; outputs concatenated."""
        crops = self._crops(stacks, boxes, idx, size)
        self._lap("crops")
        n = self.RNET_BATCH if size == 24 else self.ONET_BATCH
        outs = [[o[:len(c)] for o in net(_padded(c, n).contiguous(memory_format=torch.channels_last))]
                for c in crops.split(n)]
        self._lap(stage)
        return [torch.cat(o) for o in zip(*outs)]

    def _stage_rnet(self, stacks: _Stacks, boxes: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if len(boxes) == 0:
            return boxes, idx
        reg, prob = self._run(self.rnet, "rnet", stacks, boxes, idx, 24)
        ok = prob[:, 1] > self.thresholds[1]
        boxes, idx, scores, reg = boxes[ok], idx[ok], prob[ok, 1], reg[ok]
        keep = _nms_each(boxes, scores, idx, self.NMS_RNET)
        self._lap("rnet")
        return _square(_regress(boxes[keep], reg[keep])), idx[keep]

    def _stage_onet(self, stacks: _Stacks, boxes: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Final boxes, scores, landmarks (relative to the crop box O-Net saw) and image numbers."""
        if len(boxes) == 0:
            return boxes, boxes.new_zeros(0), boxes.new_zeros((0, 5, 2)), idx
        reg, lm, prob = self._run(self.onet, "onet", stacks, boxes, idx, 48)
        ok = prob[:, 1] > self.thresholds[2]
        boxes, idx, scores, reg, lm = boxes[ok], idx[ok], prob[ok, 1], reg[ok], lm[ok]
        lms = _points_to_pixels(boxes, lm)
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes, scores, idx, self.NMS_ONET)
        return boxes[keep], scores[keep], lms[keep], idx[keep]

    @torch.inference_mode()
    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        _check_images(images)
        if not images:
            return []
        self._clock = time.perf_counter()
        stacks = _Stacks.of(images, self.device)
        self._lap("prepare")
        boxes, idx = self._stage_pnet(stacks)
        boxes, idx = self._stage_rnet(stacks, boxes, idx)
        boxes, scores, lms, idx = self._stage_onet(stacks, boxes, idx)
        # Boxes: pixel edges -> pixel centres. Split per image, best first.
        boxes, lms = (boxes - 0.5).cpu().numpy(), lms.cpu().numpy()
        scores, idx = scores.cpu().numpy(), idx.cpu().numpy()
        out = []
        for k in range(len(images)):
            sel = np.flatnonzero(idx == k)
            sel = sel[np.argsort(-scores[sel], kind="stable")]
            out.append(Detections(boxes[sel].astype(np.float32), scores[sel].astype(np.float32),
                                  lms[sel].astype(np.float32)))
        self._lap("onet")
        return out
