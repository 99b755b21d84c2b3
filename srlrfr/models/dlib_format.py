"""Reader for dlib's serialized DNN files (``dlib::serialize(net, out)``).

Written from dlib's documented format (dlib/serialize.h, dlib/dnn/*.h), no dlib
import. Primitives:

- integers: a control byte (bit 7 = negative, low 4 bits = byte count n) then
  n little-endian bytes of the absolute value;
- floats: ``float_details`` = mantissa (int64) then exponent (int16), both as
  integers; value = mantissa * 2**exponent (exponent 32000/32001/32002 mean
  +inf/-inf/nan);
- strings: length (integer) then raw bytes; bools: ASCII '1' / '0';
- tensors: version int (1: floats as above, 2: raw little-endian float32),
  then num_samples, k, nr, nc and the values; alias tensors: version 1 and
  the four dims only.

Network layout: the loss wrapper writes (version, loss record, subnet); every
other wrapper writes (version, subnet, [its own record + bookkeeping]), so a
file starts with the wrapper versions outermost-first, then the input layer,
then each computational layer's record innermost-first. Tag and skip wrappers
(version 1) carry no record: their ids are template parameters, not stored.
The files are not compressed (dlib's model files are plain serializations).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# float_details special exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002
_MAX_WRAPPERS = 100_000  # a sane network never nests deeper; stops runaway parses


class DlibFormatError(ValueError):
    """The bytes are not a dlib network serialization we understand."""


class _Truncated(DlibFormatError):
    """Ran out of bytes (re-raised by parse_network with the record it was in)."""


# --------------------------------------------------------------------------------------
# Primitive decoders: each takes (buffer, offset) and returns (value, new offset).

def _need(buf: bytes | memoryview, pos: int, n: int) -> None:
    if pos + n > len(buf):
        raise _Truncated(f"needed {n} byte(s) at offset {pos}, file has {len(buf)}")


def decode_int(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """dlib integer: control byte (sign bit 0x80, size in low 4 bits) + LE bytes."""
    _need(buf, pos, 1)
    ctrl = buf[pos]
    size = ctrl & 0x0F
    if size > 8 or ctrl & 0x70:
        raise DlibFormatError(f"invalid integer control byte 0x{ctrl:02x} at offset {pos}")
    _need(buf, pos + 1, size)
    value = int.from_bytes(bytes(buf[pos + 1:pos + 1 + size]), "little")
    return (-value if ctrl & 0x80 else value), pos + 1 + size


def decode_float(buf: bytes | memoryview, pos: int) -> tuple[float, int]:
    """dlib float_details: mantissa then exponent, value = mantissa * 2**exponent."""
    if pos < len(buf) and buf[pos] & 0x70:
        raise DlibFormatError(
            f"old ASCII float encoding at offset {pos} is not supported (byte 0x{buf[pos]:02x})")
    mantissa, pos = decode_int(buf, pos)
    exponent, pos = decode_int(buf, pos)
    if exponent == _EXP_INF:
        return float("inf"), pos
    if exponent == _EXP_NINF:
        return float("-inf"), pos
    if exponent == _EXP_NAN:
        return float("nan"), pos
    return float(np.ldexp(float(mantissa), exponent)), pos


def decode_string(buf: bytes | memoryview, pos: int, max_len: int = 1 << 20) -> tuple[str, int]:
    length, pos = decode_int(buf, pos)
    if length < 0 or length > max_len:
        raise DlibFormatError(f"implausible string length {length} at offset {pos}")
    _need(buf, pos, length)
    raw = bytes(buf[pos:pos + length])
    try:
        return raw.decode("ascii"), pos + length
    except UnicodeDecodeError:
        raise DlibFormatError(f"non-ASCII string {raw[:40]!r} at offset {pos}") from None


def decode_bool(buf: bytes | memoryview, pos: int) -> tuple[bool, int]:
    _need(buf, pos, 1)
    ch = buf[pos]
    if ch not in (0x30, 0x31):
        raise DlibFormatError(f"expected bool '0'/'1' at offset {pos}, got 0x{ch:02x}")
    return ch == 0x31, pos + 1


def decode_tensor(buf: bytes | memoryview, pos: int) -> tuple[np.ndarray, int]:
    """resizable_tensor -> float32 array of shape (num_samples, k, nr, nc)."""
    version, pos = decode_int(buf, pos)
    dims = []
    for _ in range(4):
        d, pos = decode_int(buf, pos)
        if d < 0:
            raise DlibFormatError(f"negative tensor dimension {d} before offset {pos}")
        dims.append(d)
    count = math.prod(dims)  # Python ints: a crafted header cannot overflow to a small count
    # Bound the size by the bytes left before allocating (a float_details value takes >= 2 bytes).
    least = 4 * count if version == 2 else 2 * count
    if version in (1, 2) and pos + least > len(buf):
        raise _Truncated(f"a tensor of shape {tuple(dims)} ({count} values) needs at least {least} byte(s) at "
                         f"offset {pos}, file has {len(buf)} (cut short, or a corrupt size that is too large)")
    if version == 2:
        arr = np.frombuffer(buf, dtype="<f4", count=count, offset=pos).astype(np.float32)
        pos += 4 * count
    elif version == 1:
        arr = np.empty(count, np.float32)
        for i in range(count):
            arr[i], pos = decode_float(buf, pos)
    else:
        raise DlibFormatError(f"unknown tensor version {version} before offset {pos}")
    return arr.reshape(dims), pos


def decode_alias_tensor(buf: bytes | memoryview, pos: int) -> tuple[tuple[int, ...], int]:
    version, pos = decode_int(buf, pos)
    if version != 1:
        raise DlibFormatError(f"unknown alias_tensor version {version} before offset {pos}")
    dims = []
    for _ in range(4):
        d, pos = decode_int(buf, pos)
        dims.append(d)
    return tuple(dims), pos


# --------------------------------------------------------------------------------------

@dataclass
class LayerRecord:
    """One layer of the file. ``index`` counts bottom-up (0 = the input layer)."""
    index: int
    type: str                       # the version string as stored, e.g. "con_4"
    kind: str                       # normalised: input, con, affine, relu, max_pool, ...
    offset: int                     # byte offset where the record's string starts
    params: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    loss: LayerRecord
    layers: list[LayerRecord]       # input first, then computational layers bottom-up
    wrappers: list[str]             # bottom-up: "layer" or "tag_or_skip" per wrapper
    size: int                       # bytes consumed

    def kinds(self) -> list[str]:
        return [r.kind for r in self.layers]


class _Cursor:
    def __init__(self, buf: bytes | memoryview):
        self.buf, self.pos = buf, 0

    def int(self) -> int:
        v, self.pos = decode_int(self.buf, self.pos)
        return v

    def float(self) -> float:
        v, self.pos = decode_float(self.buf, self.pos)
        return v

    def str(self) -> str:
        v, self.pos = decode_string(self.buf, self.pos)
        return v

    def bool(self) -> bool:
        v, self.pos = decode_bool(self.buf, self.pos)
        return v

    def tensor(self) -> np.ndarray:
        v, self.pos = decode_tensor(self.buf, self.pos)
        return v

    def alias(self) -> tuple[int, ...]:
        v, self.pos = decode_alias_tensor(self.buf, self.pos)
        return v

    def peek_string(self) -> str | None:
        """The string at the cursor if one plausibly starts there, else None."""
        try:
            s, _ = decode_string(self.buf, self.pos, max_len=64)
        except _Truncated:
            raise  # the stream ends inside the wrapper versions / input name
        except DlibFormatError:
            return None
        return s if len(s) >= 4 and s.replace("_", "a").isalnum() else None


def _slice(flat: np.ndarray, start: int, dims: tuple[int, ...], what: str) -> np.ndarray:
    n = math.prod(dims)
    if min(dims, default=0) < 0 or start + n > flat.size:
        raise DlibFormatError(f"{what}: alias {dims} at {start} exceeds params of size {flat.size}")
    return flat[start:start + n].reshape(dims).copy()


# ---- layer records: each reads the fields after the version string ----

def _read_con(c: _Cursor, rec: LayerRecord) -> None:
    params = c.tensor().ravel()
    p = rec.params
    p["num_filters"] = c.int()
    p["nr"], p["nc"] = c.int(), c.int()
    p["stride_y"], p["stride_x"] = c.int(), c.int()
    p["padding_y"], p["padding_x"] = c.int(), c.int()
    filt, bias = c.alias(), c.alias()
    for name in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        p[name] = c.float()
    p["use_bias"] = c.bool() if rec.type in ("con_5", "con_6") else True
    p["use_relu"] = c.bool() if rec.type == "con_6" else False
    # con_ lays out filters as (num_filters, k_in, nr, nc) followed by the biases.
    rec.tensors["weight"] = _slice(params, 0, filt, rec.type)
    nbias = math.prod(bias)
    if p["use_bias"] and nbias:
        rec.tensors["bias"] = _slice(params, math.prod(filt), (nbias,), rec.type)


def _read_affine(c: _Cursor, rec: LayerRecord) -> None:
    params = c.tensor().ravel()
    gamma, beta = c.alias(), c.alias()
    mode = c.int()
    rec.params["mode"] = {0: "conv", 1: "fc"}.get(mode, mode)
    rec.params["disabled"] = c.bool() if rec.type == "affine_2" else False
    rec.tensors["gamma"] = _slice(params, 0, gamma, rec.type)
    rec.tensors["beta"] = _slice(params, math.prod(gamma), beta, rec.type)
    if rec.params["mode"] == "conv":  # one scale/shift per channel
        rec.tensors["gamma"] = rec.tensors["gamma"].ravel()
        rec.tensors["beta"] = rec.tensors["beta"].ravel()


def _read_pool(c: _Cursor, rec: LayerRecord) -> None:
    p = rec.params
    p["nr"], p["nc"] = c.int(), c.int()
    p["stride_y"], p["stride_x"] = c.int(), c.int()
    p["padding_y"], p["padding_x"] = c.int(), c.int()


def _read_fc(c: _Cursor, rec: LayerRecord) -> None:
    p = rec.params
    p["num_outputs"], p["num_inputs"] = c.int(), c.int()
    params = c.tensor().ravel()
    weights, biases = c.alias(), c.alias()
    p["bias_mode"] = {0: "has_bias", 1: "no_bias"}.get(c.int(), "unknown")
    for name in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        p[name] = c.float()
    p["use_bias"] = c.bool() if rec.type == "fc_3" else True
    # fc_ computes output = input (N, num_inputs) @ W (num_inputs, num_outputs).
    rec.tensors["weight"] = _slice(params, 0, (weights[0], weights[1]), rec.type)
    nb = math.prod(biases)
    if p["bias_mode"] == "has_bias" and p["use_bias"] and nb:
        rec.tensors["bias"] = _slice(params, math.prod(weights), (nb,), rec.type)


def _read_nothing(c: _Cursor, rec: LayerRecord) -> None:
    pass


_LAYER_READERS = {
    "con_4": ("con", _read_con), "con_5": ("con", _read_con), "con_6": ("con", _read_con),
    "affine_": ("affine", _read_affine), "affine_2": ("affine", _read_affine),
    "max_pool_2": ("max_pool", _read_pool), "avg_pool_2": ("avg_pool", _read_pool),
    "fc_2": ("fc", _read_fc), "fc_3": ("fc", _read_fc),
    "relu_": ("relu", _read_nothing), "add_prev_": ("add_prev", _read_nothing),
}


def _read_input(c: _Cursor, rec: LayerRecord) -> None:
    p = rec.params
    p["avg_red"], p["avg_green"], p["avg_blue"] = c.float(), c.float(), c.float()
    if rec.type == "input_rgb_image_sized":
        p["nr"], p["nc"] = c.int(), c.int()


_INPUT_TYPES = ("input_rgb_image_sized", "input_rgb_image")


def _read_loss(c: _Cursor, rec: LayerRecord) -> None:
    if rec.type == "loss_metric_2":
        rec.params["margin"], rec.params["dist_thresh"] = c.float(), c.float()
    elif rec.type != "loss_metric_":
        raise DlibFormatError(f"unsupported loss record {rec.type!r}")


# --------------------------------------------------------------------------------------

def parse_network(data: bytes | memoryview) -> DlibNetwork:
    """Parse a whole serialized network. Errors name the record and byte offset."""
    p = _Parser(_Cursor(memoryview(data) if isinstance(data, bytes) else data))
    try:
        loss = p.loss()
        versions = p.wrapper_versions()
        layers, wrappers = p.layers(versions)
    except _Truncated as e:
        raise DlibFormatError(f"truncated file while reading {p.where}: {e}") from None
    except DlibFormatError as e:
        raise DlibFormatError(f"{e} (while reading {p.where}; stopped at byte {p.c.pos})") from None
    return DlibNetwork(loss=loss, layers=layers, wrappers=wrappers, size=p.c.pos)


class _Parser:
    """A network's records in file order; ``where`` names the one being read, for the errors."""

    def __init__(self, c: _Cursor):
        self.c = c
        self.where = "the loss wrapper version at offset 0"

    def loss(self) -> LayerRecord:
        c = self.c
        if c.int() != 1:
            raise DlibFormatError("not a dlib network: the loss wrapper version is not 1")
        start = c.pos
        self.where = f"loss record at offset {start}"
        loss = LayerRecord(-1, c.str(), "loss", start)
        if not loss.type.startswith("loss_"):
            raise DlibFormatError(f"expected a loss record, found {loss.type!r}")
        self.where = f"loss record {loss.type!r} at offset {start}"
        _read_loss(c, loss)
        return loss

    def wrapper_versions(self) -> list[int]:
        """Wrapper versions, outermost first, until the input layer's string."""
        c = self.c
        versions: list[int] = []
        while True:
            self.where = f"wrapper version #{len(versions)} or the input record at offset {c.pos}"
            name = c.peek_string()
            if name is not None and name.startswith("input"):
                break
            versions.append(c.int())
            if versions[-1] not in (1, 2, 3) or len(versions) > _MAX_WRAPPERS:
                raise DlibFormatError(f"unexpected wrapper version {versions[-1]} (expected 1-3, "
                                      "or the input layer's name)")
        if not versions or versions[-1] not in (2, 3):
            raise DlibFormatError("the innermost layer wrapper must have version 2 or 3")
        return versions

    def layers(self, versions: list[int]) -> tuple[list[LayerRecord], list[str]]:
        """The input record, then one record per wrapper, innermost first (a version-1 wrapper
        other than the innermost is a tag or skip layer: no record)."""
        c = self.c
        start = c.pos
        inp = LayerRecord(0, c.str(), "input", start)
        self.where = f"record 0 ({inp.type}) at offset {start}"
        if inp.type not in _INPUT_TYPES:
            raise DlibFormatError(f"unsupported input layer {inp.type!r}")
        _read_input(c, inp)
        layers, wrappers = [inp], []
        for depth, version in enumerate(reversed(versions)):
            innermost = depth == 0
            if version == 1 and not innermost:
                wrappers.append("tag_or_skip")
                continue
            layers.append(self.layer(len(layers), innermost, version))
            wrappers.append("layer")
        return layers, wrappers

    def layer(self, index: int, innermost: bool, version: int) -> LayerRecord:
        c = self.c
        start = c.pos
        self.where = f"record {index} at offset {start}"
        name = c.str()
        self.where = f"record {index} ({name}) at offset {start}"
        if name not in _LAYER_READERS:
            raise DlibFormatError(f"unsupported layer record {name!r}")
        kind, reader = _LAYER_READERS[name]
        rec = LayerRecord(index, name, kind, start)
        reader(c, rec)
        # add_layer bookkeeping: 3 bools, x_grad and cached_output tensors, then
        # params_grad (v2) or grad_final + sample_expansion_factor (input wrapper).
        for _ in range(3):
            c.bool()
        c.tensor(), c.tensor()
        if innermost:
            c.tensor()
            if version == 3:
                c.int()
        elif version == 2:
            c.tensor()
        return rec


def read_network(path: str | Path, *, allow_trailing: bool = False) -> DlibNetwork:
    path = Path(path)
    data = path.read_bytes()
    try:
        net = parse_network(data)
    except DlibFormatError as e:
        raise DlibFormatError(f"{path}: {e}") from None
    if net.size != len(data) and not allow_trailing:
        raise DlibFormatError(
            f"{path}: {len(data) - net.size} unexpected trailing byte(s) after the network "
            f"(parsed {net.size} of {len(data)})")
    return net


def float_details_bytes(value: float) -> bytes:
    """Encode like dlib's float_details (for tests and hand-made files)."""
    if np.isnan(value):
        return encode_int(0) + encode_int(_EXP_NAN)
    if np.isinf(value):
        return encode_int(0) + encode_int(_EXP_INF if value > 0 else _EXP_NINF)
    m, e = np.frexp(float(value))
    mantissa, exponent = int(m * (1 << 53)), int(e) - 53
    while mantissa and mantissa & 0xFF == 0:
        mantissa >>= 8
        exponent += 8
    return encode_int(mantissa) + encode_int(exponent)


def encode_int(value: int) -> bytes:
    body = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


__all__ = ["DlibFormatError", "LayerRecord", "DlibNetwork", "parse_network", "read_network",
           "decode_int", "decode_float", "decode_string", "decode_bool", "decode_tensor",
           "decode_alias_tensor", "encode_int", "float_details_bytes"]
