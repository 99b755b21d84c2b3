"""IMDN, the second SRNet: its published size, shapes at every probe scale, the [-1, 1] range,
gradients reaching every weight, and selection from params (alone or beside EDSR)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srlrfr import config
from srlrfr.models.srnet import build_srnet, load_srnet, super_resolve
from srlrfr.models.srnets.imdn import IMDB, IMDN
from srlrfr.training import RunControl, TrainOptions, train_srnet

torch.set_num_threads(1)
SMALL = {"n_blocks": 2, "n_feats": 32}
CPU = RunControl(device="cpu", progress=False)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_default_size_is_the_papers_715k():
    model, kwargs = build_srnet("imdn")
    assert kwargs == {"n_blocks": 6, "n_feats": 64, "distill_ratio": 0.25, "reduction": 16, "slope": 0.05}
    assert n_params(model) == 715_176  # Hui et al. 2019, Table: IMDN x4, 715K


def test_parameter_count_follows_the_architecture():
    """Count by hand for a small IMDN: head, blocks (4 refine/distil convs, CCA, 1x1 fusion), fusion, tail."""
    def conv(c_in, c_out, k=3):
        return c_in * c_out * k * k + c_out
    c, d, blocks = 32, 8, 2
    block = (conv(c, c) + 2 * conv(c - d, c) + conv(c - d, d)  # progressive refinement
             + conv(4 * d, 4 * d // 16, 1) + conv(4 * d // 16, 4 * d, 1)  # contrast-aware attention
             + conv(4 * d, c, 1))  # fusion
    total = conv(3, c) + blocks * block + conv(blocks * c, c, 1) + conv(c, c) + conv(c, 3 * 16)
    assert n_params(IMDN(n_blocks=blocks, n_feats=c)) == total


@pytest.mark.parametrize("hw", [(7, 6), (14, 12), (28, 24), (10, 10)])
def test_x4_shapes_and_output_range(hw):
    torch.manual_seed(0)
    model = IMDN(**SMALL).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *hw) * 2 - 1)
        loud = model(torch.randn(1, 3, *hw) * 50)  # far outside [-1, 1]: tanh still bounds it
    assert out.shape == (2, 3, 4 * hw[0], 4 * hw[1])
    assert out.abs().max() < 1 and loud.abs().max() <= 1 and torch.isfinite(loud).all()


def test_gradients_reach_every_weight():
    torch.manual_seed(0)
    model = IMDN(**SMALL)
    x = torch.rand(3, 3, 7, 6) * 2 - 1
    target = torch.rand(3, 3, 28, 24) * 2 - 1
    torch.nn.functional.l1_loss(model(x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_block_keeps_shape_and_constant_input_has_finite_gradient():
    block = IMDB(16, 4, reduction=4, slope=0.05)
    x = torch.zeros(1, 16, 5, 5, requires_grad=True)  # constant channels: zero contrast
    out = block(x)
    out.sum().backward()
    assert out.shape == x.shape and torch.isfinite(x.grad).all()


def test_bad_sizes_are_explained():
    with pytest.raises(ValueError, match="distill_ratio"):
        IMDN(n_feats=2, distill_ratio=0.25)
    with pytest.raises(ValueError, match="n_blocks"):
        IMDN(n_blocks=0)


def test_selected_from_params_alone_or_beside_edsr():
    cfg = config.validate({"train": {"srnet": {"type": "imdn", "n_blocks": 2}}})
    assert cfg["train"]["srnet"]["n_feats"] == 64 and config.srnet_names(cfg) == ["imdn"]
    both = config.validate({"train": {"srnet": [{"type": "edsr", "n_blocks": 2, "n_feats": 16},
                                                {"type": "imdn", **SMALL}]}})
    assert config.srnet_names(both) == ["edsr", "imdn"]
    assert config.srnet_entry(both, "imdn")["distill_ratio"] == 0.25
    with pytest.raises(config.ConfigError, match=r"key 'train.srnet.1.distill_ratio'"):
        config.validate({"train": {"srnet": [{"type": "edsr"}, {"type": "imdn", "distill_ratio": "a"}]}})


def test_trains_and_restores_a_face(tmp_path):
    rng = np.random.default_rng(0)
    hr = np.repeat(np.repeat(rng.integers(0, 256, (4, 7, 6, 3), dtype=np.uint8), 16, axis=1), 16, axis=2)
    path = train_srnet(hr, fnet=None, lam=0.0, out_dir=tmp_path, srnet={"type": "imdn", **SMALL},
                       options=TrainOptions(batch_size=2, iterations=3, checkpoint_every=3, log_every=1),
                       control=CPU)
    model, info = load_srnet(path)
    assert info["arch"] == "imdn" and info["kwargs"]["n_feats"] == 32 and info["scale"] == 4
    out = super_resolve(model, info, hr[:2, ::16, ::16].copy())
    assert out.shape == (2, 28, 24, 3) and out.dtype == np.uint8


def test_identity_loss_trains_through_imdn(tmp_path):
    """lam > 0: the FNet's gradient flows back through IMDN (a random tiny SphereFace-20: plumbing)."""
    import dataclasses

    from srlrfr.models.fnet import FaceRecognizer
    from srlrfr.models.fnets.sphereface import SphereFace20
    from srlrfr.registry import FNETS
    spec = dataclasses.replace(FNETS.get("sphereface20"), feature_dim=16,
                               build=lambda: SphereFace20(widths=(4, 8, 8, 8), feature_dim=16))
    torch.manual_seed(0)
    fnet = FaceRecognizer(spec, spec.build())
    rng = np.random.default_rng(1)
    hr = np.repeat(np.repeat(rng.integers(0, 256, (4, 7, 6, 3), dtype=np.uint8), 16, axis=1), 16, axis=2)
    opts = TrainOptions(batch_size=2, iterations=2, checkpoint_every=2, log_every=1, seed=1)
    with_id = train_srnet(hr, fnet=fnet, lam=0.5, out_dir=tmp_path / "id", srnet={"type": "imdn", **SMALL},
                          options=opts, control=CPU)
    pixel = train_srnet(hr, fnet=None, lam=0.0, out_dir=tmp_path / "px", srnet={"type": "imdn", **SMALL},
                        options=opts, control=CPU)
    rows = (tmp_path / "id" / "train_log.csv").read_text().splitlines()[1:]
    assert all(float(r.split(",")[3]) > 0 for r in rows)  # the identity term was computed
    a, b = load_srnet(with_id)[0], load_srnet(pixel)[0]
    assert not torch.equal(a.head.weight, b.head.weight)  # and it moved IMDN's first layer
