"""Network shapes, checkpoint compatibility with the authors' key layout, and
the FaceRecognizer wrapper (channel order, resize, normalisation, gradients,
flip-concatenated features). FNets here are randomly initialised: they test
plumbing, not recognition."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from srlrfr.models.base import FNetSpec
from srlrfr.models.fnet import FaceRecognizer, extract_features, load_fnet
from srlrfr.models.fnets.sphereface import SphereFace20
from srlrfr.models.srnet import to_tensor, to_uint8
from srlrfr.models.srnets.edsr import EDSR
from srlrfr.models.weights import CheckpointError, load_into, load_state_dict_file
from srlrfr.registry import FNETS, SRNETS
from srlrfr.training import identity_loss

torch.set_num_threads(1)


def authors_sface_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the authors' sface.pth, written from its documented layout."""
    shapes: dict[str, tuple[int, ...]] = {}
    stages = [(0, 3, 64, 1), (3, 64, 128, 2), (6, 128, 256, 4), (9, 256, 512, 1)]
    for idx, c_in, c, n_blocks in stages:
        shapes[f"{idx}.weight"] = (c, c_in, 3, 3)
        shapes[f"{idx}.bias"] = (c,)
        shapes[f"{idx + 1}.weight"] = (c,)  # PReLU, one slope per channel
        for b in range(n_blocks):
            p = f"{idx + 2}.{b}.resblock"
            shapes.update({f"{p}.0.weight": (c, c, 3, 3), f"{p}.0.bias": (c,), f"{p}.1.weight": (c,),
                           f"{p}.2.weight": (c, c, 3, 3), f"{p}.2.bias": (c,), f"{p}.3.weight": (c,)})
    shapes["13.weight"] = (512, 512 * 7 * 6)
    shapes["13.bias"] = (512,)
    return shapes


def tiny_sphereface_spec(**changes) -> FNetSpec:
    """The registered sphereface20 entry with a narrow, randomly initialised backbone."""
    spec = FNETS.get("sphereface20")
    return dataclasses.replace(spec, build=lambda: SphereFace20(widths=(4, 8, 8, 8), feature_dim=16), feature_dim=16,
                               **changes)


def random_tiny_fnet(seed: int = 0) -> FaceRecognizer:
    torch.manual_seed(seed)
    spec = tiny_sphereface_spec()
    return FaceRecognizer(spec, spec.build()).freeze()


def conv_params(c_in: int, c_out: int, k: int = 3) -> int:
    return c_in * c_out * k * k + c_out


# --- SphereFace-20 -------------------------------------------------------------

def test_sphereface_output_shape():
    net = SphereFace20().eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 112, 96))
    assert out.shape == (2, 512)


def test_sphereface_state_dict_matches_authors_layout(tmp_path):
    expected = authors_sface_shapes()
    got = {k: tuple(v.shape) for k, v in SphereFace20().state_dict().items()}
    assert got == expected

    # A file laid out like sface.pth (random values) loads and lands in the right places.
    gen = torch.Generator().manual_seed(1)
    fake = {k: torch.randn(s, generator=gen) for k, s in expected.items()}
    torch.save(fake, tmp_path / "sface.pth")
    net = load_into(SphereFace20(), load_state_dict_file(tmp_path / "sface.pth"), tmp_path / "sface.pth")
    assert torch.equal(net[2][0].resblock[3].weight, fake["2.0.resblock.3.weight"])
    assert torch.equal(net[13].bias, fake["13.bias"])


def test_sphereface_registered_spec():
    spec = FNETS.get("sphereface20")
    assert (spec.input_size, spec.feature_dim, spec.channel_order, spec.geometry) == \
        ((112, 96), 512, "bgr", "sphereface_112x96")
    x = torch.tensor([-1.0, 0.0, 1.0])
    assert torch.allclose(spec.normalize(x), torch.tensor([-127.5 / 128, 0.0, 127.5 / 128]))


# --- EDSR ----------------------------------------------------------------------

@pytest.mark.parametrize("scale,hw", [(2, (14, 12)), (4, (7, 6)), (8, (7, 6))])
def test_edsr_tiny_shapes_and_range(scale, hw):
    net = EDSR(n_blocks=2, n_feats=8, scale=scale)
    out = net(torch.randn(3, 3, *hw) * 5)
    assert out.shape == (3, 3, hw[0] * scale, hw[1] * scale)
    assert out.abs().max() <= 1.0  # tanh output
    assert len(net.upsampler) == {2: 1, 4: 2, 8: 3}[scale]


def test_edsr_full_size_param_count_and_keys():
    n_blocks, n_feats = 32, 256
    expected = (conv_params(3, n_feats) + n_blocks * 2 * conv_params(n_feats, n_feats)
                + conv_params(n_feats, n_feats) + 2 * conv_params(n_feats, 4 * n_feats) + conv_params(n_feats, 3))
    net = SRNETS.get("edsr").build(**SRNETS.get("edsr").defaults)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert 42e6 < expected < 44e6  # "about 43M"
    keys = set(net.state_dict())
    for k in ["conv1.weight", "res_blocks.31.residual.0.weight", "res_blocks.31.residual.2.bias",
              "conv2.bias", "upsampler.0.conv.weight", "upsampler.1.conv.bias", "conv3.weight"]:
        assert k in keys
    assert len(keys) == 2 + 32 * 4 + 2 + 2 * 2 + 2


def _edsr_by_formula(net: EDSR, x: torch.Tensor) -> torch.Tensor:
    """EDSR written out with fresh tensors (no in-place op): what its forward must compute."""
    h = net.conv1(x)
    r = h
    for blk in net.res_blocks:
        r = r + blk.res_scale * blk.residual[2](torch.relu(blk.residual[0](r)))
    h = net.conv2(r) + h
    for up in net.upsampler:
        h = up.shuffle(up.conv(h))
    return torch.tanh(net.conv3(h))


@pytest.mark.parametrize("res_scale", [1.0, 0.1])
def test_edsr_in_place_forward_matches_formula_and_its_gradients(res_scale):
    torch.manual_seed(0)
    net = EDSR(n_blocks=3, n_feats=8, res_scale=res_scale, scale=4)
    x = torch.randn(2, 3, 6, 5)
    out = net(x)
    ref = _edsr_by_formula(net, x)
    assert torch.equal(out, ref)  # same operations in the same order: bit-identical
    grads = torch.autograd.grad(out.square().sum(), list(net.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(net.parameters()))
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in grads)


def test_edsr_rejects_non_power_of_two():
    with pytest.raises(ValueError, match="power of 2"):
        EDSR(n_blocks=1, n_feats=4, scale=3)


# --- pixel conversions ---------------------------------------------------------

def test_uint8_tensor_roundtrip():
    img = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    t = to_tensor(img)
    assert t.shape == (2, 3, 5, 4) and t.min() >= -1 and t.max() <= 1
    assert float(to_tensor(np.full((1, 1, 1, 3), 255, np.uint8)).min()) == 1.0
    assert np.array_equal(to_uint8(t), img)
    assert to_uint8(torch.full((1, 3, 1, 1), 3.0)).max() == 255  # clipped


# --- FaceRecognizer ------------------------------------------------------------

class InputRecorder(nn.Module):
    """Test double for a backbone: records what the wrapper feeds it."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: torch.Tensor | None = None

    def forward(self, x):
        self.seen = x.detach()
        return x.mean(dim=(2, 3)) * self.scale


def test_wrapper_channel_order_resize_and_normalize():
    spec = FNetSpec("probe", InputRecorder, geometry="sphereface_112x96", input_size=(56, 48), feature_dim=3,
                    channel_order="bgr", normalize=lambda x: 2 * x)
    fnet = FaceRecognizer(spec, InputRecorder())
    x = torch.empty(1, 3, 112, 96)
    x[:, 0], x[:, 1], x[:, 2] = 0.5, -0.25, 0.125  # constant R, G, B planes
    fnet(x)
    seen = fnet.backbone.seen
    assert seen.shape == (1, 3, 56, 48)
    assert torch.allclose(seen[0, :, 10, 10], torch.tensor([0.25, -0.5, 1.0]))  # BGR, then x2

    rgb = FaceRecognizer(dataclasses.replace(spec, channel_order="rgb", input_size=(112, 96)), InputRecorder())
    rgb(x)
    assert torch.equal(rgb.backbone.seen, 2 * x)
    with pytest.raises(ValueError, match="112, 96"):
        fnet(torch.zeros(1, 3, 28, 24))


def test_wrapper_resize_is_differentiable():
    spec = FNetSpec("probe", InputRecorder, geometry="sphereface_112x96", input_size=(50, 40), feature_dim=3,
                    channel_order="rgb", normalize=lambda x: x)
    fnet = FaceRecognizer(spec, InputRecorder()).freeze()
    x = torch.randn(2, 3, 112, 96, requires_grad=True)
    fnet(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_identity_loss_zero_for_identical_inputs_and_positive_otherwise():
    fnet = random_tiny_fnet()
    hr = torch.rand(3, 3, 112, 96) * 2 - 1
    assert identity_loss(fnet, hr, fnet(hr), "bilinear").abs() < 1e-6
    small = torch.rand(3, 3, 56, 48) * 2 - 1  # resized to 112x96 inside
    up = torch.nn.functional.interpolate(small, size=(112, 96), mode="bilinear", align_corners=False)
    assert identity_loss(fnet, small, fnet(up), "bilinear").abs() < 1e-6
    assert identity_loss(fnet, hr, fnet(hr.flip(0)), "bilinear") > 1e-4


def test_identity_gradient_reaches_srnet_not_fnet():
    fnet = random_tiny_fnet()
    srnet = EDSR(n_blocks=2, n_feats=8)
    lr = torch.rand(2, 3, 28, 24) * 2 - 1
    hr = torch.rand(2, 3, 112, 96) * 2 - 1
    loss = identity_loss(fnet, srnet(lr), fnet(hr).detach(), "bilinear")
    loss.backward()
    for name, p in srnet.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None and not p.requires_grad for p in fnet.parameters())


def test_frozen_fnet_stays_in_eval_mode():
    fnet = random_tiny_fnet()
    fnet.train()
    assert not fnet.training and not fnet.backbone.training


def test_extract_features_flip_concat_and_swap():
    fnet = random_tiny_fnet()
    images = np.random.default_rng(0).integers(0, 256, (5, 112, 96, 3), dtype=np.uint8)
    feats = extract_features(fnet, images, batch_size=2, progress=False)
    assert feats.shape == (5, 32) and feats.dtype == np.float32
    flipped = extract_features(fnet, np.ascontiguousarray(images[:, :, ::-1]), batch_size=2, progress=False)
    np.testing.assert_allclose(flipped[:, :16], feats[:, 16:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flipped[:, 16:], feats[:, :16], rtol=1e-5, atol=1e-6)
    assert not np.allclose(feats[:, :16], feats[:, 16:])  # the two halves do differ
    single = extract_features(fnet, images, flip=False, progress=False)
    np.testing.assert_allclose(single, feats[:, :16], rtol=1e-5, atol=1e-6)


def test_load_fnet_loads_and_freezes(tmp_path):
    torch.manual_seed(0)
    state = SphereFace20().state_dict()
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "sface.pth")
    fnet = load_fnet("sphereface20", tmp_path / "sface.pth")
    assert not fnet.training and not any(p.requires_grad for p in fnet.parameters())
    assert torch.equal(fnet.backbone[0].weight, state["0.weight"])

    torch.save({k: v for k, v in state.items() if k != "13.bias"}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"13\.bias"):
        load_fnet("sphereface20", tmp_path / "broken.pth")
    with pytest.raises(FileNotFoundError, match="fnet-weights --fnet sphereface20"):
        load_fnet("sphereface20", tmp_path / "absent.pth")
