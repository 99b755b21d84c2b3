"""Degradation models on tiny synthetic crops: each op against its definition, compositions
equal their parts in order, seeded noise reproducible and independent of chunking, and the
degrade step's folder (clean levels + degraded inputs) as training and evaluation read it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from srlrfr import config
from srlrfr.degradation import Degradation, downsample
from srlrfr.degradation.ops import Context
from srlrfr.registry import DEGRADATION_OPS, DEGRADATIONS
from srlrfr.steps.degrade import degrade
from srlrfr.storage import StorageError, open_level, write_npy


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    """Six 32x32 crops with edges and texture (so blur, noise and JPEG all change them)."""
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(small, 4, axis=1), 4, axis=2).astype(np.int16)
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)


def op(name: str, images: np.ndarray, factor: int = 4, rngs=(), **params) -> np.ndarray:
    return DEGRADATION_OPS.get(name).apply(images, Context(factor, "cv2_bicubic", list(rngs)), **params)


def image_rngs(seed: int, stream: str, factor: int, rows) -> list[np.random.Generator]:
    return Degradation({"type": "down_noise"}, seed=seed, stream=stream).rngs(factor, rows[0], len(rows))


def test_resize_is_the_plain_kernel(crops):
    deg = Degradation({"type": "resize"}, "cv2_area")
    assert deg.plain and not deg.random
    assert np.array_equal(deg(crops, 4), downsample(crops, 4, "cv2_area"))


def test_blur_is_opencv_gaussian_before_downsampling(crops):
    expect = np.stack([cv2.GaussianBlur(c, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT_101) for c in crops])
    assert np.array_equal(op("blur", crops, sigma=1.5), expect)
    got = Degradation({"type": "blur_down", "sigma": 1.5})(crops, 4)
    assert np.array_equal(got, downsample(expect, 4, "cv2_bicubic"))
    assert not np.array_equal(got, downsample(crops, 4, "cv2_bicubic"))
    # more blur, smoother faces: less energy left in the high frequencies
    rough = [np.abs(np.diff(op("blur", crops, sigma=s).astype(int), axis=2)).mean() for s in (0.5, 1.5, 3.0)]
    assert rough[0] > rough[1] > rough[2]


def test_jpeg_is_deterministic_keeps_colours_and_loses_more_at_low_quality(crops):
    a, b = op("jpeg", crops, quality=30), op("jpeg", crops, quality=30)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == crops.shape
    err = [np.abs(op("jpeg", crops, quality=q).astype(int) - crops).mean() for q in (10, 50, 95)]
    assert err[0] > err[1] > err[2] > 0
    red = np.zeros((1, 16, 16, 3), np.uint8)
    red[..., 0] = 200  # RGB red must stay red (OpenCV codes BGR)
    out = op("jpeg", red, quality=90)[0].astype(int)
    assert out[..., 0].mean() > 190 and out[..., 2].mean() < 10


def test_noise_adds_rounded_clipped_gaussian_of_the_given_sigma(crops):
    mid = np.full((64, 16, 16, 3), 128, np.uint8)
    noisy = op("noise", mid, rngs=image_rngs(0, "", 4, range(64)), sigma=10.0).astype(float) - 128
    assert abs(noisy.mean()) < 0.3 and noisy.std() == pytest.approx(10.0, rel=0.03)
    with pytest.raises(ValueError, match="one generator per image"):
        op("noise", mid, sigma=1.0)


def test_named_compositions_equal_their_parts_in_order(crops):
    sigma, quality, noise = 1.2, 35, 6.0
    blurred = op("blur", crops, sigma=sigma)
    expect = op("jpeg", downsample(blurred, 4, "cv2_bicubic"), quality=quality)
    assert np.array_equal(Degradation({"type": "blur_down_jpeg", "sigma": sigma, "quality": quality})(crops, 4),
                          expect)
    assert np.array_equal(Degradation({"type": "down_jpeg", "quality": quality})(crops, 4),
                          op("jpeg", downsample(crops, 4, "cv2_bicubic"), quality=quality))

    rows = range(len(crops))
    low = downsample(blurred, 4, "cv2_bicubic")
    expect = op("jpeg", op("noise", low, rngs=image_rngs(3, "lfw", 4, rows), sigma=noise), quality=quality)
    full = Degradation({"type": "blur_down_noise_jpeg", "sigma": sigma, "noise_sigma": noise, "quality": quality},
                       seed=3, stream="lfw")
    assert np.array_equal(full(crops, 4), expect)
    chain = Degradation({"type": "chain", "steps": [{"type": "blur", "sigma": sigma}, {"type": "down"},
                                                    {"type": "noise", "sigma": noise},
                                                    {"type": "jpeg", "quality": quality}]}, seed=3, stream="lfw")
    assert np.array_equal(chain(crops, 4), expect)


def test_noise_is_seeded_per_image_and_factor_not_per_chunk(crops):
    deg = Degradation({"type": "down_noise", "noise_sigma": 8.0}, seed=5, stream="lfw")
    whole = deg(crops, 4)
    assert np.array_equal(whole, deg(crops, 4))  # same on every run
    chunked = np.concatenate([deg(crops[:2], 4, start=0), deg(crops[2:5], 4, start=2), deg(crops[5:], 4, start=5)])
    assert np.array_equal(whole, chunked)
    assert np.array_equal(deg(crops[3:4], 4, start=3), whole[3:4])  # one image alone: its own draw
    other_seed = Degradation({"type": "down_noise", "noise_sigma": 8.0}, seed=6, stream="lfw")(crops, 4)
    other_set = Degradation({"type": "down_noise", "noise_sigma": 8.0}, seed=5, stream="celeba")(crops, 4)
    assert not np.array_equal(whole, other_seed) and not np.array_equal(whole, other_set)
    # the noise itself differs between images and between factors (no shared pattern)
    flat = np.full((2, 32, 32, 3), 128, np.uint8)
    a, b = deg(flat, 4), deg(flat, 2)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], b[0, :8, :8])


def test_degrade_folder_holds_clean_targets_and_degraded_inputs(crops, tmp_path, monkeypatch):
    import srlrfr.steps.degrade as step
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with write_npy(aligned / "images.npy", crops.shape) as w:
        w.write(crops)
    model = {"type": "blur_down_noise_jpeg", "sigma": 1.0, "noise_sigma": 4.0, "quality": 50}
    monkeypatch.setattr(step, "CHUNK", 4)  # several chunks, one of them short
    out = degrade(aligned, [2, 4, 8], "cv2_bicubic", tmp_path / "deg", model=model, seed=1, stream="celeba",
                  inputs=[4, 8])
    names = sorted(p.name for p in out.iterdir())
    assert names == ["levels.json", "x2.npy", "x4.npy", "x4_lq.npy", "x8.npy", "x8_lq.npy"]
    manifest = json.loads((out / "levels.json").read_text())
    assert manifest["degradation"] == {"model": model, "kernel": "cv2_bicubic", "seed": 1}
    assert manifest["inputs"] == {"4": "x4_lq.npy", "8": "x8_lq.npy"}
    deg = Degradation(model, seed=1, stream="celeba")
    for f in (4, 8):
        assert np.array_equal(open_level(aligned, out, f).read(), deg(crops, f))  # probes / inputs
        assert np.array_equal(open_level(aligned, out, f, clean=True).read(), downsample(crops, f, "cv2_bicubic"))
    assert np.array_equal(open_level(aligned, out, 2, clean=True).read(), downsample(crops, 2, "cv2_bicubic"))
    with pytest.raises(StorageError, match="no degraded x2 level"):
        open_level(aligned, out, 2)


def test_plain_model_stores_each_level_once(crops, tmp_path):
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with write_npy(aligned / "images.npy", crops.shape) as w:
        w.write(crops)
    out = degrade(aligned, [4, 8], "cv2_bicubic", tmp_path / "deg")
    assert sorted(p.name for p in out.iterdir()) == ["levels.json", "x4.npy", "x8.npy"]
    assert open_level(aligned, out, 4).path == open_level(aligned, out, 4, clean=True).path
    # a folder written before degradation models (no 'inputs' in its manifest) reads as plain
    manifest = json.loads((out / "levels.json").read_text())
    (out / "levels.json").write_text(json.dumps({k: manifest[k] for k in ("factors", "kernel", "n")}))
    assert open_level(aligned, out, 8).path.name == "x8.npy"


def test_params_select_and_check_a_degradation():
    cfg = config.validate({"degrade": {"model": {"type": "blur_down_jpeg", "quality": 30}}})
    assert cfg["degrade"]["model"] == {"type": "blur_down_jpeg", "sigma": 1.2, "quality": 30}
    assert cfg["degrade"]["seed"] == 0 and config.validate({})["degrade"]["model"] == {"type": "resize"}
    chain = config.validate({"degrade": {"model": {"type": "chain", "steps": [{"type": "down"}, {"type": "jpeg"}]}}})
    assert chain["degrade"]["model"]["steps"] == [{"type": "down"}, {"type": "jpeg", "quality": 40}]
    bad = {
        r"key 'degrade.model.sigma': must be > 0": {"type": "blur_down", "sigma": 0},
        r"key 'degrade.model.quality': must be a JPEG quality": {"type": "down_jpeg", "quality": 0},
        r"key 'degrade.model.quality': 'x' is not a int": {"type": "down_jpeg", "quality": "x"},
        r"unknown key 'degrade.model.quality' for degradation model type 'blur_down'": {"type": "blur_down",
                                                                                        "quality": 3},
        r"key 'degrade.model.steps': 2 'down' ops": {"type": "chain", "steps": [{"type": "down"}, {"type": "down"}]},
        r"key 'degrade.model.steps.1.type': unknown degradation op 'gamma'": {"type": "chain", "steps": [
            {"type": "down"}, {"type": "gamma"}]},
        r"key 'degrade.model.steps.0.sigma': must be > 0": {"type": "chain", "steps": [
            {"type": "blur", "sigma": -1.0}, {"type": "down"}]},
        r"key 'degrade.model.type'": {"type": "fog"},
    }
    for message, model in bad.items():
        with pytest.raises(config.ConfigError, match=message):
            config.validate({"degrade": {"model": model}})
    assert set(DEGRADATIONS.keys()) >= {"resize", "blur_down", "down_noise", "down_jpeg", "blur_down_jpeg",
                                        "blur_down_noise_jpeg", "chain"}
