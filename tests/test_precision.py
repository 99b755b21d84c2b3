"""evaluate.precision: FNet and SRNet in bf16 give the fp32 results to within bf16's rounding,
and precisions that do not fit the device are refused or flagged by name."""
import numpy as np
import pytest
import torch

from srlrfr import config
from srlrfr.device import inference_dtype
from srlrfr.doctor.base import FAIL, OK, WARN
from srlrfr.doctor.machine import Gpu, TorchInfo, check_devices, check_precision
from srlrfr.models.fnet import extract_features, load_fnet
from srlrfr.models.fnets.sphereface import SphereFace20
from srlrfr.models.srnet import build_srnet, load_srnet, save_srnet, super_resolve


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_bf16_fnet_features_match_fp32(tmp_path):
    torch.manual_seed(0)
    torch.save(SphereFace20().state_dict(), tmp_path / "sface.pth")
    images = np.random.default_rng(0).integers(0, 256, (4, 112, 96, 3), dtype=np.uint8)
    full = extract_features(load_fnet("sphereface20", tmp_path / "sface.pth"), images, progress=False)
    low_net = load_fnet("sphereface20", tmp_path / "sface.pth", dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in low_net.parameters())
    low = extract_features(low_net, images, progress=False)
    assert low.dtype == np.float32 and low.shape == full.shape
    assert not np.array_equal(low, full)  # it did run in bf16
    assert _cos(low, full).min() > 0.999  # bf16 keeps 8 bits of mantissa: directions barely move


def test_bf16_srnet_output_matches_fp32(tmp_path):
    torch.manual_seed(0)
    model, kwargs = build_srnet("edsr", {"n_blocks": 2, "n_feats": 16})
    path = save_srnet(tmp_path / "edsr.pt", model.eval(), "edsr", kwargs, "rgb")
    lr = np.random.default_rng(1).integers(0, 256, (3, 7, 6, 3), dtype=np.uint8)
    full = super_resolve(*load_srnet(path), lr)
    low_model, info = load_srnet(path, dtype=torch.bfloat16)
    low = super_resolve(low_model, info, lr)
    assert low.dtype == np.uint8 and low.shape == full.shape == (3, 28, 24, 3)
    diff = np.abs(low.astype(int) - full.astype(int))
    assert diff.max() <= 4 and diff.mean() < 1.0


def test_precision_is_validated_by_name():
    assert inference_dtype("cpu", "fp32") is torch.float32
    assert inference_dtype("cpu", "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="fp16 runs only on a GPU"):
        inference_dtype("cpu", "fp16")
    with pytest.raises(ValueError, match="evaluate.precision values must be one of fp32, bf16, fp16"):
        inference_dtype("cpu", "int8")
    with pytest.raises(config.ConfigError, match="evaluate.precision.srnet"):
        config.validate({"evaluate": {"precision": {"srnet": "half"}}})
    assert config.validate({})["evaluate"]["precision"] == {"fnet": "fp32", "srnet": "fp32"}


A100 = Gpu(0, "NVIDIA A100", 80 << 30, (8, 0), True)
V100 = Gpu(0, "Tesla V100", 32 << 30, (7, 0), False)


@pytest.mark.parametrize("key, value, gpu, native, status", [
    ("evaluate.precision.fnet", "fp32", None, False, None),
    ("evaluate.precision.fnet", "bf16", None, True, OK),
    ("evaluate.precision.fnet", "bf16", None, False, WARN),
    ("evaluate.precision.fnet", "fp16", None, True, FAIL),
    ("train.amp", "fp16", None, True, WARN),
    ("evaluate.precision.fnet", "bf16", V100, True, FAIL),
    ("evaluate.precision.fnet", "bf16", A100, False, OK),
    ("train.amp", "fp16", V100, False, OK),
])
def test_doctor_checks_the_precision_against_the_device(key, value, gpu, native, status):
    checks = check_precision(key, value, gpu, cpu_bf16=native)
    assert [c.status for c in checks] == ([status] if status else [])
    if status in (WARN, FAIL):
        assert key in checks[0].fix


def test_doctor_checks_both_networks_precisions_on_the_evaluate_device():
    cfg = config.validate({"evaluate": {"device": "cpu", "precision": {"fnet": "fp32", "srnet": "fp16"}}})
    checks = [c for c in check_devices(cfg, TorchInfo("2.14.1", None, False, (), "")) if "precision" in c.name]
    assert [(c.name, c.status) for c in checks] == [("evaluate.precision.srnet", FAIL)]
