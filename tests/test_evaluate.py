"""Scoring maths and the upsampling baselines of the evaluation step."""
import cv2
import numpy as np
import pytest

from srlrfr.methods import restore, upsample
from srlrfr.steps.evaluate import cosine_scores, example_pairs


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


def test_pairs_touching_damaged_images_are_excluded_by_cause():
    from types import SimpleNamespace

    from srlrfr.steps.evaluate import exclusion_causes
    status = np.array(["ok", "corrupt", "unreadable", "no_face", "ok"], dtype=object)
    aligned = SimpleNamespace(status=status, ok=status == "ok", damaged=np.isin(status, ["corrupt", "unreadable"]))
    left, right = np.array([0, 1, 1, 3, 0]), np.array([4, 0, 2, 0, 3])
    assert exclusion_causes(aligned, left, right, "center").tolist() == ["", "corrupt", "unreadable", "", ""]
    assert exclusion_causes(aligned, left, right, "exclude").tolist() == \
        ["", "corrupt", "unreadable", "no_face", "no_face"]
