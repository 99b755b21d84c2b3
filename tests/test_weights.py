"""Safe checkpoint loading, mismatch messages, our SR checkpoint format and the
import of the authors' EDSR checkpoints (synthetic files with their layout)."""
from __future__ import annotations

import contextlib
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from srlrfr.damaged import DamagedFileError
from srlrfr.data.download import file_sha256
from srlrfr.models.srnet import import_authors_edsr, load_srnet, save_srnet, super_resolve
from srlrfr.models.srnets.edsr import EDSR
from srlrfr.models.weights import CheckpointError, load_into, load_state_dict_file

torch.set_num_threads(1)


class WritesMarkerOnLoad:
    """Unpickling this calls open(marker, "w"): stands in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_crafted_pickle_is_refused_without_running_code(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"0.weight": torch.zeros(2), "trap": WritesMarkerOnLoad(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh)

    with pytest.raises(CheckpointError, match="evil.pth") as err:
        load_state_dict_file(path)
    assert not marker.exists()
    assert not isinstance(err.value, DamagedFileError) and "refused" in str(err.value)  # not "damaged"

    # Control: the file really is hostile; an unrestricted load runs the payload
    # (a bare pickle then fails torch's format check, after the damage is done).
    with contextlib.suppress(Exception):
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pth.*run fetch"):
        load_state_dict_file(tmp_path / "absent.pth", hint="run fetch")


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_state_dict_unwrapped_and_module_prefix_stripped(tmp_path, wrap):
    sd = {"module.a.weight": torch.ones(2), "b": torch.zeros(1)}
    torch.save(sd if wrap is None else {wrap: sd, "epoch": 3}, tmp_path / "w.pt")
    got = load_state_dict_file(tmp_path / "w.pt")
    assert set(got) == {"a.weight", "b"}


def test_non_tensor_entries_rejected(tmp_path):
    torch.save({"a": torch.ones(1), "b": 3}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"w\.pt.*not tensors.*'b'"):
        load_state_dict_file(tmp_path / "w.pt")


def test_mismatch_message_names_keys_shapes_and_file():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    sd = model.state_dict()
    sd.pop("1.bias")
    sd["0.weight"] = torch.zeros(5, 4)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_into(model, sd, "some/file.pth")
    msg = str(err.value)
    assert "some/file.pth" in msg
    assert "missing keys 1: 1.bias" in msg
    assert "unexpected keys 1: extra.weight" in msg
    assert "0.weight file (5, 4) vs model (3, 4)" in msg


def test_mismatch_message_truncates_long_lists():
    model = nn.Sequential(*[nn.Linear(1, 1) for _ in range(8)])
    with pytest.raises(CheckpointError, match=r"missing keys 16: .*\(11 more\)"):
        load_into(model, {}, "x.pth")


def authors_style_edsr_file(path, n_blocks=2, n_feats=8, seed=0):
    """A checkpoint with the authors' EDSR key layout, DataParallel prefix, random values."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {"conv1.weight": (n_feats, 3, 3, 3), "conv1.bias": (n_feats,),
              "conv2.weight": (n_feats, n_feats, 3, 3), "conv2.bias": (n_feats,),
              "conv3.weight": (3, n_feats, 3, 3), "conv3.bias": (3,)}
    for i in range(n_blocks):
        for j in (0, 2):
            shapes[f"res_blocks.{i}.residual.{j}.weight"] = (n_feats, n_feats, 3, 3)
            shapes[f"res_blocks.{i}.residual.{j}.bias"] = (n_feats,)
    for j in range(2):
        shapes[f"upsampler.{j}.conv.weight"] = (4 * n_feats, n_feats, 3, 3)
        shapes[f"upsampler.{j}.conv.bias"] = (4 * n_feats,)
    sd = {"module." + k: torch.randn(s, generator=gen) * 0.1 for k, s in shapes.items()}
    torch.save(sd, path)
    return {k[len("module."):]: v for k, v in sd.items()}


def test_import_authors_edsr_roundtrip(tmp_path):
    src = tmp_path / "edsr_baseline.pth"
    original = authors_style_edsr_file(src, n_blocks=3, n_feats=8)
    out = import_authors_edsr(src, tmp_path / "edsr_baseline.pt")
    model, info = load_srnet(out)
    assert info["channel_order"] == "bgr" and info["scale"] == 4
    assert info["kwargs"] == {"n_blocks": 3, "n_feats": 8, "res_scale": 0.1, "scale": 4}
    assert info["meta"]["sha256"] == file_sha256(src) and info["meta"]["source"] == "edsr_baseline.pth"
    for k, v in model.state_dict().items():
        assert torch.equal(v, original[k]), k


def test_import_rejects_foreign_checkpoint(tmp_path):
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "sface.pth")
    with pytest.raises(CheckpointError, match="not an authors' EDSR"):
        import_authors_edsr(tmp_path / "sface.pth", tmp_path / "out.pt")


def test_load_srnet_rejects_raw_state_dict(tmp_path):
    authors_style_edsr_file(tmp_path / "raw.pth")
    with pytest.raises(CheckpointError, match="import_authors_edsr"):
        load_srnet(tmp_path / "raw.pth")


def test_super_resolve_honours_bgr_checkpoints(tmp_path):
    """A BGR network equals an RGB network whose first-layer inputs and last-layer
    outputs are channel-reversed; super_resolve must give both the same result."""
    torch.manual_seed(0)
    bgr = EDSR(n_blocks=1, n_feats=8)
    rgb = EDSR(n_blocks=1, n_feats=8)
    rgb.load_state_dict(bgr.state_dict())
    with torch.no_grad():
        rgb.conv1.weight.copy_(bgr.conv1.weight.flip(1))
        rgb.conv3.weight.copy_(bgr.conv3.weight.flip(0))
        rgb.conv3.bias.copy_(bgr.conv3.bias.flip(0))
    kwargs = {"n_blocks": 1, "n_feats": 8, "res_scale": 0.1, "scale": 4}
    m_bgr, i_bgr = load_srnet(save_srnet(tmp_path / "bgr.pt", bgr, "edsr", kwargs, "bgr", {"x": 1}))
    m_rgb, i_rgb = load_srnet(save_srnet(tmp_path / "rgb.pt", rgb, "edsr", kwargs, "rgb"))
    assert i_bgr["meta"] == {"x": 1}
    images = np.random.default_rng(0).integers(0, 256, (3, 7, 6, 3), dtype=np.uint8)
    out_bgr = super_resolve(m_bgr, i_bgr, images, batch_size=2)
    out_rgb = super_resolve(m_rgb, i_rgb, images, batch_size=2)
    assert out_bgr.shape == (3, 28, 24, 3) and out_bgr.dtype == np.uint8
    assert np.abs(out_bgr.astype(int) - out_rgb.astype(int)).max() <= 1  # float reassociation only
    assert out_bgr.std() > 0


def test_load_into_an_empty_model_takes_the_files_tensors(tmp_path):
    from srlrfr.models.weights import build_empty
    torch.manual_seed(0)
    state = EDSR(n_blocks=1, n_feats=4).state_dict()
    model = build_empty(EDSR, n_blocks=1, n_feats=4)
    assert all(p.is_meta for p in model.parameters())  # nothing allocated, nothing initialised
    load_into(model, state, "mem")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), state.values()))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_into(build_empty(EDSR, n_blocks=1, n_feats=4), {k: v for k, v in state.items() if "conv3" not in k}, "x")
