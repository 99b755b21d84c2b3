"""SphereFace-20: the paper's face recogniser (FNet).

The module tree reproduces the authors' ``sface.pth`` state_dict exactly: a
plain ``nn.Sequential`` whose indices 0..13 are conv, PReLU, residual stage
(x4 stages), flatten, linear. Keys therefore read ``0.weight``,
``2.0.resblock.0.weight``, ``13.bias`` and the authors' file loads unchanged.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from torch import Tensor, nn

from ...atomic import atomic_path
from ...data import fetch, sources
from ...data.download import git_blob_id
from ...data.fetch import fetch_authors_weights
from ...registry import FNETS
from ..base import FNetSpec, WeightsNeed

# (width, residual blocks) per stage: the 20-layer network of the SphereFace paper.
SPHEREFACE20_STAGES: tuple[tuple[int, int], ...] = ((64, 1), (128, 2), (256, 4), (512, 1))


class SphereResidualBlock(nn.Module):
    """x + (conv3x3 -> PReLU -> conv3x3 -> PReLU)(x); the child is named ``resblock``."""

    def __init__(self, channels: int):
        super().__init__()
        self.resblock = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.resblock(x)


class SphereFace20(nn.Sequential):
    """SphereFace-20 backbone: (N, 3, H, W) -> (N, feature_dim).

    ``widths`` exists so tests can build a narrow network with the same
    topology; the published model uses the defaults.
    """

    def __init__(self, input_size: tuple[int, int] = (112, 96), feature_dim: int = 512,
                 widths: tuple[int, ...] = tuple(w for w, _ in SPHEREFACE20_STAGES)):
        if len(widths) != len(SPHEREFACE20_STAGES):
            raise ValueError(f"SphereFace20 needs {len(SPHEREFACE20_STAGES)} stage widths, got {widths}")
        h, w = input_size
        layers: list[nn.Module] = []
        in_ch = 3
        for width, (_, n_blocks) in zip(widths, SPHEREFACE20_STAGES):
            layers += [nn.Conv2d(in_ch, width, 3, 2, 1), nn.PReLU(width),
                       nn.Sequential(*[SphereResidualBlock(width) for _ in range(n_blocks)])]
            in_ch = width
            h, w = (h + 1) // 2, (w + 1) // 2  # 3x3 stride-2 pad-1 conv
        layers += [nn.Flatten(), nn.Linear(in_ch * h * w, feature_dim)]
        super().__init__(*layers)


def _normalize(x: Tensor) -> Tensor:
    # SphereFace was trained on (pixel - 127.5) / 128, i.e. [-1, 1] * 127.5/128.
    return x * (127.5 / 128.0)


def _prepare_weights(source: str, out: Path, cache: Path) -> dict:
    """The authors' sface.pth, downloaded or local, checked against its git blob id either way."""
    src = fetch_authors_weights("sface", Path(cache) / "authors", source=source)
    with atomic_path(out) as tmp:
        shutil.copyfile(src, tmp)
    return {"source": str(src), "git_blob": git_blob_id(src)}


def _weights_need(source: str, path_of) -> WeightsNeed:
    """sface.pth: downloaded, or a local copy (a folder holding it, or the file)."""
    label = "SphereFace-20 weights"
    if source == fetch.DOWNLOAD:
        return WeightsNeed(label, fetch.HINT_WEIGHTS, download=(sources.SFACE_PTH,))
    path = path_of(source)
    return WeightsNeed(label, fetch.HINT_WEIGHTS, path=path / sources.SFACE_PTH.filename if path.is_dir() else path)


FNETS.register("sphereface20", FNetSpec(
    name="sphereface20",
    build=SphereFace20,
    geometry="sphereface_112x96",
    input_size=(112, 96),
    feature_dim=512,
    channel_order="bgr",  # trained on OpenCV-read (BGR) images
    normalize=_normalize,
    weights=("sface.pth from the authors' repository: srlrfr fnet-weights --fnet sphereface20 "
             "(fnets.sphereface20.weights: download, or the path of your copy)"),
    weights_default="download",
    prepare_weights=_prepare_weights,
    check_weights=_weights_need,
    train_flops=11e9,  # forward + backward per face: torch.utils.flop_counter in benchmarks/bench_train.py
    licence=("converted by Lai et al. from the official SphereFace release "
             "(MIT, Weiyang Liu and Yandong Wen); the SR_LRFR repository ships no licence file"),
))
