"""Scoring maths and the upsampling baselines of the evaluation step."""
import cv2
import numpy as np
import pytest
import torch

from srlrfr.methods import restore, upsample
from srlrfr.models.base import FNetSpec
from srlrfr.models.fnet import FaceRecognizer, extract_features
from srlrfr.steps.evaluate import FLIPS, cosine_scores, example_pairs, probe_features


def test_cosine_on_hand_made_features():
    a = np.array([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-3.0, -4.0], [1.0, -1.0]])
    np.testing.assert_allclose(cosine_scores(a, b), [1.0, -1.0, 0.0], atol=1e-12)


def test_flip_concat_score_is_cosine_of_concatenations():
    # The protocol's feature is concat(f(x), f(flip x)); scoring concatenations
    # is not the mean of the two halves' cosines.
    f1, f1f = np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    f2, f2f = np.array([[1.0, 0.0]]), np.array([[0.0, -1.0]])
    s = cosine_scores(np.hstack([f1, f1f]), np.hstack([f2, f2f]))
    np.testing.assert_allclose(s, [(1 - 2) / (np.sqrt(5) * np.sqrt(2))])


def test_baselines_are_true_bicubic_and_bilinear():
    rng = np.random.default_rng(0)
    probes = rng.integers(0, 256, (2, 7, 6, 3), dtype=np.uint8)
    cubic = restore("bicubic", probes, (112, 96))
    linear = restore("bilinear_authors", probes, (112, 96))
    assert cubic.shape == linear.shape == (2, 112, 96, 3)
    np.testing.assert_array_equal(cubic[0], cv2.resize(probes[0], (96, 112), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_array_equal(linear[1], cv2.resize(probes[1], (96, 112), interpolation=cv2.INTER_LINEAR))
    assert not np.array_equal(cubic, linear)
    # Full-size probes pass through untouched.
    full = rng.integers(0, 256, (1, 112, 96, 3), dtype=np.uint8)
    assert restore("bicubic", full, (112, 96)) is full
    with pytest.raises(ValueError, match="needs an SRNet"):
        restore("edsr_lambda0.5", probes, (112, 96))
    with pytest.raises(KeyError):
        upsample(probes, (112, 96), "lanczos")


def test_example_pairs_fixed_by_seed():
    assert np.array_equal(example_pairs(600, 6, 0), example_pairs(600, 6, 0))
    assert not np.array_equal(example_pairs(600, 6, 0), example_pairs(600, 6, 1))
    assert len(example_pairs(3, 6, 0)) == 3


# ---- evaluate.flip on a tiny case whose scores follow by hand

class HalfMeans(torch.nn.Module):
    """Toy FNet: (mean of the left half, mean of the right half) of channel 0."""
    def forward(self, x):
        w = x.shape[-1] // 2
        return torch.stack([x[:, 0, :, :w].mean((1, 2)), x[:, 0, :, w:].mean((1, 2))], 1)


class BrightenLeftX4(torch.nn.Module):
    """Toy x4 SRNet that is not flip-equivariant: nearest x4, then +40 grey levels on the left half."""
    def forward(self, x):
        y = x.repeat_interleave(4, 2).repeat_interleave(4, 3)
        y[..., : y.shape[-1] // 2] += 40 / 127.5
        return y


def _level(value: float) -> float:  # uint8 grey level -> the [-1, 1] pixel the FNet sees
    return value / 127.5 - 1


def test_flip_protocols_give_the_documented_scores():
    """Probe 28x24: left half 100, right half 140; gallery face: uniform 140 (112x96).
    SR(probe) = uniform 140, so 'restored' mirrors a uniform face and scores 1.
    'authors' super-resolves the mirrored probe (left 140, right 100) -> left 180, right 100:
    score = cos([v, v, v, v], [v, v, L180, L100]) with v = L140, which is 0.40423 (to 5 places)."""
    spec = FNetSpec("half_means", HalfMeans, "sphereface_112x96", (112, 96), 2, "rgb", lambda t: t)
    fnet = FaceRecognizer(spec, HalfMeans()).freeze()
    srnet = (BrightenLeftX4(), {"channel_order": "rgb", "scale": 4})
    probe = np.full((1, 28, 24, 3), 140, np.uint8)
    probe[:, :, :12] = 100
    gallery = extract_features(fnet, np.full((1, 112, 96, 3), 140, np.uint8), device="cpu",
                               progress=False)
    restored = restore("edsr_lambda0", probe, (112, 96), srnet=srnet)
    assert (restored == 140).all()
    scores = {flip: cosine_scores(gallery, probe_features(fnet, "edsr_lambda0", probe, restored, flip=flip,
                                                          srnet=srnet))[0]
              for flip in FLIPS}
    v, w, u = _level(140), _level(180), _level(100)
    by_hand = (2 * v + w + u) / (2 * np.sqrt(2 * v * v + w * w + u * u))
    np.testing.assert_allclose(scores["restored"], 1.0, atol=1e-6)
    np.testing.assert_allclose(scores["authors"], by_hand, atol=1e-6)
    assert round(by_hand, 5) == 0.40423
    # baselines: the authors' script mirrors the interpolated face, so both protocols are one
    low = np.random.default_rng(0).integers(0, 256, (3, 7, 6, 3), dtype=np.uint8)
    up = restore("bicubic", low, (112, 96))
    np.testing.assert_array_equal(probe_features(fnet, "bicubic", low, up, flip="authors"),
                                  probe_features(fnet, "bicubic", low, up, flip="restored"))
    with pytest.raises(ValueError, match="evaluate.flip must be one of"):
        probe_features(fnet, "bicubic", low, up, flip="both")


def test_pairs_touching_damaged_images_are_excluded_by_cause():
    from types import SimpleNamespace

    from srlrfr.steps.evaluate import exclusion_causes
    status = np.array(["ok", "corrupt", "unreadable", "no_face", "ok"], dtype=object)
    aligned = SimpleNamespace(status=status, ok=status == "ok", damaged=np.isin(status, ["corrupt", "unreadable"]))
    left, right = np.array([0, 1, 1, 3, 0]), np.array([4, 0, 2, 0, 3])
    assert exclusion_causes(aligned, left, right, "center").tolist() == ["", "corrupt", "unreadable", "", ""]
    assert exclusion_causes(aligned, left, right, "exclude").tolist() == \
        ["", "corrupt", "unreadable", "no_face", "no_face"]
