"""dlib ResNet port: weights conversion, layer shapes, and descriptors vs dlib itself."""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from srlrfr.geometry import get_geometry
from srlrfr.models.dlib_format import DlibFormatError, read_network
from srlrfr.models.fnets import dlib_resnet as dr
from srlrfr.registry import FNETS

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def dat_path() -> Path:
    try:
        return dr.default_dat_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def converted(dat_path, tmp_path_factory) -> dict:
    return dr.convert_dlib_weights(dat_path, tmp_path_factory.mktemp("dlib") / "dlib_resnet34.pt")


@pytest.fixture(scope="session")
def model(converted) -> dr.DlibResNet34:
    net = dr.DlibResNet34()
    net.load_state_dict(torch.load(converted["out"], weights_only=True))
    return net.eval()


# ---- synthetic maths ----

def test_pad_add_zero_pads_to_the_larger_shape_top_left():
    a = torch.arange(1 * 4 * 3 * 3, dtype=torch.float32).view(1, 4, 3, 3)
    b = torch.ones(1, 2, 4, 4)
    out = dr._pad_add(a, b)
    assert out.shape == (1, 4, 4, 4)
    expected = torch.zeros(1, 4, 4, 4)
    expected[:, :, :3, :3] = a
    expected[:, :2] += 1
    torch.testing.assert_close(out, expected)


def test_normalize_maps_srlrfr_pixels_to_dlib_input():
    pixels = torch.tensor([0.0, 128.0, 255.0])
    x = (pixels / 127.5 - 1).view(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    got = dr.dlib_normalize(x)
    for c, mean in enumerate(dr.DLIB_MEAN_RGB):
        torch.testing.assert_close(got[0, c, 0], (pixels - mean) / 256)


def test_spec_and_geometry_registered():
    spec = FNETS.get("dlib_resnet34")
    assert (spec.feature_dim, spec.channel_order, spec.input_size) == (128, "rgb", (150, 150))
    geo = get_geometry(spec.geometry)
    assert geo.size == (160, 160) and [geo.resolution(f) for f in (4, 8, 16)] == [(40, 40), (20, 20), (10, 10)]
    ref = geo.reference_points()
    assert ref[0, 0] < ref[1, 0] and ref[3, 0] < ref[4, 0]  # left eye / mouth corner on the image left
    assert abs(ref[:, 0].mean() - 79.5) < 3  # roughly centred
    with torch.no_grad():
        assert spec.build()(torch.zeros(2, 3, 150, 150)).shape == (2, 128)


def test_default_dat_path_error_names_the_pip_package(monkeypatch):
    monkeypatch.setattr(dr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="face-recognition-models"):
        dr.default_dat_path()


# ---- conversion against the records ----

def test_convert_returns_provenance(converted, dat_path):
    assert converted["source"] == str(dat_path)
    assert converted["sha256"] == hashlib.sha256(dat_path.read_bytes()).hexdigest()
    state = torch.load(converted["out"], weights_only=True)
    assert set(state) == set(dr.DlibResNet34().state_dict())


def test_parameter_count_and_layer_shapes_match_records(model, dat_path):
    net = read_network(dat_path)
    n_record = sum(t.size for r in net.layers for t in r.tensors.values())
    assert sum(p.numel() for p in model.parameters()) == n_record
    cons = [r for r in net.layers if r.kind == "con"]
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(cons) == len(convs) == 29
    for rec, conv in zip(cons, convs):
        assert tuple(conv.weight.shape) == rec.tensors["weight"].shape
        assert (conv.stride[0], conv.padding[0]) == (rec.params["stride_y"], rec.params["padding_y"])
        np.testing.assert_array_equal(conv.weight.detach().numpy(), rec.tensors["weight"])
    affines = [r for r in net.layers if r.kind == "affine"]
    assert [m.weight.numel() for m in model.modules() if isinstance(m, dr.Affine)] == \
        [r.tensors["gamma"].size for r in affines]
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), net.layers[-1].tensors["weight"].T)


def test_converter_rejects_a_different_architecture(dat_path):
    other = dr.DlibResNet34(blocks=dr.DLIB_RESNET34_BLOCKS[:-1])
    with pytest.raises(DlibFormatError, match="layer sequence differs"):
        dr.state_dict_from_records(read_network(dat_path), other)
    net = read_network(dat_path)
    net.layers[1].params["padding_y"] = 3  # a record whose padding the torch conv does not have
    with pytest.raises(DlibFormatError, match=r"record 1 \(con_4\): kernel/stride/padding"):
        dr.state_dict_from_records(net)
    net = read_network(dat_path)
    net.layers[-2].params["nr"] = 2  # not avg_pool_everything
    with pytest.raises(DlibFormatError, match="window/stride/padding"):
        dr.state_dict_from_records(net)


# ---- the port against dlib ----

@pytest.fixture(scope="session")
def dlib_chips(dat_path, shared_data) -> dict:
    """Up to 6 LFW + 6 CelebA faces: dlib's 150x150 chips and dlib's descriptors of them."""
    dlib = pytest.importorskip("dlib")
    cv2 = pytest.importorskip("cv2")
    models = dat_path.parent
    detector = dlib.get_frontal_face_detector()
    sp5 = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    recognizer = dlib.face_recognition_model_v1(str(dat_path))
    sources = [sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg")),
               sorted((shared_data / "celeba-sample" / "images").glob("*.jpg"))]
    chips, names, originals = [], [], []
    for files in sources:
        found = 0
        for path in files[:: max(1, len(files) // 18)]:  # evenly spaced candidates
            img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            faces = detector(img, 1)
            if len(faces):
                face = max(faces, key=lambda r: r.area())
                chips.append(dlib.get_face_chip(img, sp5(img, face), size=150, padding=0.25))
                names.append(str(path.relative_to(shared_data)))
                originals.append((img, face))
                found += 1
            if found == 6:
                break
    assert len(chips) == 12, f"only {len(chips)} sample faces detected"
    ref = np.array([np.array(recognizer.compute_face_descriptor(c)) for c in chips])  # 150x150 overload
    return {"chips": np.stack(chips), "names": names, "ref": ref, "originals": originals}


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_descriptors_match_dlib(model, dlib_chips):
    ref = dlib_chips["ref"]
    x = torch.from_numpy(dlib_chips["chips"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        ours = model(dr.dlib_normalize(x)).double().numpy()
    cos, maxdiff = _cosine(ours, ref), np.abs(ours - ref).max(1)
    report = "\n".join(f"{n}: cos={c:.8f} maxdiff={d:.2e}" for n, c, d in zip(dlib_chips["names"], cos, maxdiff))
    print(report)
    assert (cos >= 0.999).all() and (maxdiff <= 1e-3).all(), report
    # the descriptors are not degenerate: different people stay apart
    assert (ref @ ref.T / np.outer(np.linalg.norm(ref, axis=1), np.linalg.norm(ref, axis=1))).min() < 0.9


def test_wrapper_on_160_canvas_matches_dlib(converted, dlib_chips):
    """The registered FNet through srlrfr's wrapper: a 160x160 crop with the chip's
    framing (the chip upscaled) is resized back to 150 inside; only resampling blur differs."""
    cv2 = pytest.importorskip("cv2")
    from srlrfr.models.fnet import load_fnet
    fnet = load_fnet("dlib_resnet34", converted["out"])
    crops = np.stack([cv2.resize(c, (160, 160), interpolation=cv2.INTER_CUBIC) for c in dlib_chips["chips"]])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        ours = fnet(x).double().numpy()
    cos = _cosine(ours, dlib_chips["ref"])
    print("wrapper cosines:", np.round(cos, 5))
    assert (cos >= 0.995).all(), cos


def _five_from_68(shape) -> np.ndarray:
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def test_geometry_reproduces_dlib_framing(converted, dlib_chips, dat_path):
    """The dlib_160x160 reference points frame faces as dlib's chips do.

    (a) Framing: the 5 points measured on dlib's chips (68-point predictor, 150 ->
    160 canvas) fit the registered reference with a similarity that is the identity
    on average (scale within 3%, centre within 2 px; a 6 px shift or a 15% zoom of
    the reference fails this). (b) Use: srlrfr's own alignment of the ORIGINAL image
    onto the geometry gives nearly dlib's descriptor of dlib's chip (the descriptor
    is robust to small framing changes, so (b) alone would not pin the numbers)."""
    dlib = pytest.importorskip("dlib")
    from srlrfr.face.align import align_face, similarity_transform
    from srlrfr.models.fnet import load_fnet
    sp68 = dlib.shape_predictor(str(dat_path.parent / "shape_predictor_68_face_landmarks.dat"))
    detector = dlib.get_frontal_face_detector()
    ref = get_geometry("dlib_160x160").reference_points()
    centre = np.array([79.5, 79.5, 1.0])
    scales, shifts = [], []
    for chip in dlib_chips["chips"]:
        boxes = detector(chip, 1)
        if not len(boxes):
            continue
        on_chip = (_five_from_68(sp68(chip, max(boxes, key=lambda r: r.area()))) + 0.5) * 160 / 150 - 0.5
        m = similarity_transform(ref, on_chip)
        scales.append(np.hypot(m[0, 0], m[1, 0]))
        shifts.append(m @ centre - centre[:2])
    assert len(scales) >= 10
    scale, shift = float(np.mean(scales)), np.mean(shifts, axis=0)
    print(f"framing vs dlib chips: scale {scale:.4f}, centre shift {shift.round(2)} px, n={len(scales)}")
    assert abs(scale - 1) < 0.03 and np.hypot(*shift) < 2.0

    fnet = load_fnet("dlib_resnet34", converted["out"])
    crops = [align_face(img, _five_from_68(sp68(img, face)), "dlib_160x160")
             for img, face in dlib_chips["originals"]]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        cos = _cosine(fnet(x).double().numpy(), dlib_chips["ref"])
    print("aligned-vs-chip cosines:", np.round(cos, 4))
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


def test_pad_add_in_place_into_the_covering_tensor():
    y, s = torch.randn(2, 4, 3, 3), torch.randn(2, 2, 3, 3)
    want = y.clone()
    want[:, :2] += s
    out = dr._pad_add(y, s)
    assert out is y and torch.equal(out, want)  # no canvas: the bigger fresh tensor holds the sum
    small, big = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 4, 4)
    want = big.clone()
    want[:, :, :3, :3] += small
    assert torch.equal(dr._pad_add(small, big), want)


def test_folded_affine_computes_the_same_function_and_gradient():
    torch.manual_seed(0)
    plain = dr.DlibResNet34()
    with torch.no_grad():
        for m in plain.modules():
            if isinstance(m, dr.Affine):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    folded = dr.fold_affine(copy.deepcopy(plain))
    assert not any(isinstance(m, dr.Affine) for m in folded.modules())
    assert not any(".aff" in k or k.startswith("aff") for k in folded.state_dict())
    x = torch.randn(2, 3, 150, 150, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    a, b = plain(x), folded(x2)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-4, atol=1e-6)
    assert dr.fold_affine(folded) is folded  # folding twice changes nothing
    assert FNETS.get("dlib_resnet34").fuse is dr.fold_affine
