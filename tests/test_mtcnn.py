"""MTCNN: weight mapping, pipeline pieces, and detection on real LFW images."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from srlrfr.face import mtcnn as M
from srlrfr.face.detect import choose_face, detect_landmarks, failures, read_rgb
from srlrfr.face.landmarks_io import read_landmarks_csv


@pytest.fixture(scope="module")
def detector() -> M.MTCNN:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return M.MTCNN()


def test_weight_files_map_onto_layers():
    expected = {  # Keras array shapes per file, in layer order (conv HWIO, dense (in, out))
        "pnet": [(3, 3, 3, 10), (10,), (1, 1, 10), (3, 3, 10, 16), (16,), (1, 1, 16), (3, 3, 16, 32), (32,),
                 (1, 1, 32), (1, 1, 32, 4), (4,), (1, 1, 32, 2), (2,)],
        "rnet": [(3, 3, 3, 28), (28,), (1, 1, 28), (3, 3, 28, 48), (48,), (1, 1, 48), (2, 2, 48, 64), (64,),
                 (1, 1, 64), (576, 128), (128,), (128,), (128, 4), (4,), (128, 2), (2,)],
        "onet": [(3, 3, 3, 32), (32,), (1, 1, 32), (3, 3, 32, 64), (64,), (1, 1, 64), (3, 3, 64, 64), (64,),
                 (1, 1, 64), (2, 2, 64, 128), (128,), (1, 1, 128), (1152, 256), (256,), (256,), (256, 4),
                 (4,), (256, 10), (10,), (256, 2), (2,)],
    }
    nets = dict(zip(M.NETS, M.load_nets()))
    for name, shapes in expected.items():
        arrays = M.load_keras_weights(name)
        assert [a.shape for a in arrays] == shapes
        net = nets[name]
        # every array lands in the torch layer, in its transposed torch layout
        params = dict(net.named_parameters())
        assert sum(p.numel() for p in params.values()) == sum(a.size for a in arrays)
        conv1 = params["conv1.weight"].numpy()
        np.testing.assert_array_equal(conv1[:, :, 1, 2], arrays[0][1, 2, :, :].T)  # OIHW[o,i,y,x] = HWIO[y,x,i,o]
        np.testing.assert_array_equal(params["prelu1.weight"].numpy(), arrays[2].reshape(-1))
    dense = dict(nets["onet"].named_parameters())["fc5.weight"].numpy()
    np.testing.assert_array_equal(dense, M.load_keras_weights("onet")[12].T)


def test_flatten_matches_keras_permute_then_flatten():
    x = torch.arange(2 * 5 * 3 * 4, dtype=torch.float32).reshape(2, 5, 3, 4)  # N C H W
    nhwc = x.numpy().transpose(0, 2, 3, 1)
    keras = nhwc.transpose(0, 2, 1, 3).reshape(2, -1)  # Permute((2, 1, 3)) then Flatten
    np.testing.assert_array_equal(M._flatten_whc(x).numpy(), keras)


def test_bad_weight_file_count_is_reported(tmp_path):
    import joblib
    for name in M.NETS:
        arrays = M.load_keras_weights(name)
        joblib.dump(arrays[:-1] if name == "rnet" else arrays, tmp_path / f"{name}.lz4", compress="lz4")
    with pytest.raises(ValueError, match="rnet.*too few"):
        M.load_nets(tmp_path)


def test_min_nms_drops_nested_box_iou_would_keep():
    boxes = torch.tensor([[0, 0, 100, 100], [10, 10, 50, 50], [200, 200, 260, 260]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.95, 0.8])
    idx = torch.tensor([0, 0, 0])
    keep = M._nms_min(boxes, scores, idx, 0.7).tolist()
    assert keep == [1, 2]  # the nested box has the better score, its container goes
    keep_other_image = M._nms_min(boxes, scores, torch.tensor([0, 1, 0]), 0.7).tolist()
    assert sorted(keep_other_image) == [0, 1, 2]


def _reference_forward(net, x):
    """The nets as plainly written (NCHW, max_pool2d, one layer per head, normalised input)."""
    x = (x - 127.5) * 0.0078125
    if isinstance(net, M.PNet):
        x = F.max_pool2d(net.prelu1(net.conv1(x)), 2, 2, ceil_mode=True)
        x = net.prelu3(net.conv3(net.prelu2(net.conv2(x))))
        return net.conv4_1(x), F.softmax(net.conv4_2(x), dim=1)
    x = F.max_pool2d(net.prelu1(net.conv1(x)), 3, 2, ceil_mode=True)
    x = F.max_pool2d(net.prelu2(net.conv2(x)), 3, 2)
    if isinstance(net, M.RNet):
        x = net.prelu4(net.fc4(M._flatten_whc(net.prelu3(net.conv3(x)))))
        return net.fc5_1(x), F.softmax(net.fc5_2(x), dim=1)
    x = F.max_pool2d(net.prelu3(net.conv3(x)), 2, 2, ceil_mode=True)
    x = net.prelu5(net.fc5(M._flatten_whc(net.prelu4(net.conv4(x)))))
    return net.fc6_1(x), net.fc6_2(x), F.softmax(net.fc6_3(x), dim=1)


def test_fast_forward_matches_plain_layers():
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for net, shape in zip(M.load_nets(), [(2, 3, 31, 26), (5, 3, 24, 24), (5, 3, 48, 48)]):
            x = torch.rand(shape, generator=g) * 255
            fast = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
            for a, b in zip(fast, _reference_forward(net, x)):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5)


def test_max_pool_2x2_is_ceil_mode_pooling():
    x = torch.randn(2, 3, 7, 10)
    for h, w in [(7, 10), (6, 9), (7, 9), (6, 10)]:
        part = x[..., :h, :w]
        torch.testing.assert_close(M._max_pool_2x2(part), F.max_pool2d(part, 2, 2, ceil_mode=True))


def test_area_pyramid_matches_interpolate():
    images = torch.randint(0, 256, (2, 3, 37, 53)).float()
    sizes = [(23, 32), (16, 23), (5, 7), (37, 53)]
    for level, size in zip(M.area_pyramid(images, sizes), sizes):
        torch.testing.assert_close(level, F.interpolate(images, size=size, mode="area"), atol=1e-4, rtol=0)


def test_roi_resample_matches_roi_align():
    """Inside, overlapping the border, far outside, huge, tiny, empty and inverted boxes."""
    g = torch.Generator().manual_seed(1)
    canvas = torch.rand(3, 3, 40, 50, generator=g) * 255
    xy = torch.rand(300, 2, generator=g) * 90 - 25
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g) * 120 - 10], dim=1)
    boxes[:3] = torch.tensor([[5.0, 5.0, 5.0, 30.0], [10.0, 12.0, 10.5, 12.2], [-60.0, -60.0, -45.0, -45.0]])
    idx = torch.randint(0, 3, (300,), generator=g)
    rois = torch.cat([idx[:, None].float(), boxes], dim=1)
    for size in (24, 48):
        ours = M.roi_resample(canvas, boxes, idx, size)
        torch.testing.assert_close(ours, roi_align(canvas, rois, size, 1.0, -1, aligned=True), atol=2e-3, rtol=0)
    assert M.roi_resample(canvas, boxes[:0], idx[:0], 24).shape == (0, 3, 24, 24)
    wide = torch.rand(2, 3, 20, 3000, generator=g) * 255  # few boxes per slice here
    xy = torch.rand(40, 2, generator=g) * torch.tensor([3000.0, 20.0])
    boxes = torch.cat([xy, xy + torch.rand(40, 2, generator=g) * torch.tensor([500.0, 30.0]) + 1], dim=1)
    idx = torch.randint(0, 2, (40,), generator=g)
    torch.testing.assert_close(M.roi_resample(wide, boxes, idx, 48), roi_align(
        wide, torch.cat([idx[:, None].float(), boxes], dim=1), 48, 1.0, -1, aligned=True), atol=2e-3, rtol=0)


def test_landmark_pixels_follow_the_reference_formula():
    """Reference (MATLAB, TropComplique): point = first pixel + p * width in pixels, pixels inclusive.

    A crop over pixel columns 10..109 and rows 20..69 is the pixel-edge box [10, 20, 110, 70).
    facenet-pytorch writes the same thing with 1-based boxes: x1 + w * p - 1.
    """
    rel = torch.tensor([[0.0, 0.5, 1.0, 0.25, 0.3, 0.0, 0.5, 1.0, 0.6, 0.61]])
    p = rel.view(2, 5).T.numpy()  # (5, 2) x, y fractions
    pts = M._points_to_pixels(torch.tensor([[10.0, 20.0, 110.0, 70.0]]), rel)[0].numpy()
    first, last = np.array([10, 20]), np.array([109, 69])
    np.testing.assert_allclose(pts, first + p * (last - first + 1), atol=1e-5)
    np.testing.assert_allclose(pts, (first + 1) + p * (last - first + 1) - 1, atol=1e-5)  # 1-based form
    # the geometric reading puts p = 0 on the crop's top-left corner, (9.5, 19.5) in pixel centres
    np.testing.assert_allclose(pts - M.LANDMARK_SHIFT, [9.5, 19.5] + p * [100, 50], atol=1e-5)


def test_pyramid_scales(detector):
    scales = detector.scales(250, 250)
    assert scales[0] == pytest.approx(12 / 20)
    assert np.allclose(np.diff(np.log(scales)), np.log(0.709))
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709


def test_blank_and_invalid_images(detector):
    dets = detector.detect([np.full((120, 100, 3), 128, np.uint8), np.zeros((64, 64, 3), np.uint8)])
    assert [len(d) for d in dets] == [0, 0]
    assert dets[0].landmarks.shape == (0, 5, 2)
    with pytest.raises(ValueError, match="image 1: expected a uint8 RGB"):
        detector.detect([np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.uint8)])


def test_choose_face_prefers_the_centred_face():
    boxes = np.array([[0, 0, 90, 90],          # bigger, in the corner
                      [90, 90, 160, 160],      # smaller, centred
                      [200, 100, 250, 150]], np.float32)
    dets = M.Detections(boxes, np.array([0.99, 0.98, 0.99], np.float32), np.zeros((3, 5, 2), np.float32))
    assert choose_face(dets, (250, 250, 3)) == 1
    assert choose_face(M.Detections(boxes[:0], np.zeros(0), np.zeros((0, 5, 2))), (250, 250)) is None


def _lfw_items(shared_data, n):
    files = sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg"))
    assert len(files) >= n
    step = len(files) // n
    return [(f.stem, str(f)) for f in files[::step][:n]]


def test_real_lfw_faces_and_landmarks_are_sane(shared_data, detector):
    items = _lfw_items(shared_data, 60)
    images = [read_rgb(p) for _, p in items]
    # two batches of different composition must agree with one big batch
    dets = detector.detect(images[:30]) + detector.detect(images[30:])
    for (image_id, _), img, d in zip(items, images, dets):
        k = choose_face(d, img.shape)
        assert k is not None, f"no face in {image_id}"
        assert d.scores[k] > 0.9
        le, re, nose, lm, rm = d.landmarks[k]
        assert le[0] < re[0] and lm[0] < rm[0], image_id
        assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1]), image_id
        assert 20 < np.linalg.norm(re - le) < 80, image_id  # deep-funneled LFW: ~30-57 px between the eyes
        centre = d.landmarks[k].mean(axis=0)
        assert np.all(np.abs(centre - 125) < 45), image_id  # the face sits in the middle of 250x250
        x1, y1, x2, y2 = d.boxes[k]
        assert x1 < le[0] and re[0] < x2 and y1 < le[1] and max(lm[1], rm[1]) < y2
    for a, b in zip(detector.detect(images[:8]), dets[:8]):  # another batch: the very same floats
        for field in ("boxes", "scores", "landmarks"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# Points of the chosen face from TropComplique/mtcnn-pytorch (commit 45b3446, default settings),
# the port the authors' landmark files come from, run on these sample-fold images (x, y per point:
# left eye, right eye, nose, left mouth, right mouth). Picked where the two detectors agree
# closely; over the 806 images of the fold where both choose the same face the points scatter
# with sd 1.0-1.5 px around a mean offset of (-0.05, -0.01) px (it was (-0.55, -0.51) px with
# the geometric convention srlrfr used before).
TROPCOMPLIQUE_POINTS = {
    "Angela_Lansbury_0001":
        [[104.73, 116.90], [147.36, 113.57], [124.38, 138.64], [109.45, 157.76], [149.55, 155.45]],
    "Georgia_Giddings_0001":
        [[107.66, 114.59], [149.32, 114.05], [127.52, 137.23], [110.98, 157.64], [146.07, 157.49]],
    "Jose_Theodore_0001":
        [[100.47, 111.98], [144.43, 110.37], [133.82, 140.59], [97.21, 154.40], [144.41, 152.11]],
    "Ricardo_Lagos_0025":
        [[105.83, 113.37], [145.64, 113.04], [124.80, 141.89], [107.95, 155.04], [145.08, 156.33]],
}


def test_points_match_the_reference_detector(shared_data, detector):
    names = sorted(TROPCOMPLIQUE_POINTS)
    images = [read_rgb(shared_data / "lfw-fold1" / "images" / n.rsplit("_", 1)[0] / f"{n}.jpg") for n in names]
    offsets = []
    for name, img, d in zip(names, images, detector.detect(images)):
        k = choose_face(d, img.shape)
        assert k is not None, name
        offsets.append(d.landmarks[k] - np.array(TROPCOMPLIQUE_POINTS[name]))
    offsets = np.array(offsets)  # (image, point, xy)
    assert np.abs(offsets).max() < 1.25, offsets.round(2)
    assert np.all(np.abs(offsets.mean(axis=1)) < 0.3), offsets.mean(axis=1).round(2)  # per image
    assert np.all(np.abs(offsets.mean(axis=(0, 1))) < 0.15), offsets.mean(axis=(0, 1)).round(3)


def test_detect_landmarks_csv_records_unreadable(shared_data, tmp_path):
    items = _lfw_items(shared_data, 3)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    items = [items[0], ("broken", str(corrupt)), ("gone", str(tmp_path / "missing.jpg")), *items[1:]]
    out = tmp_path / "lm" / "landmarks.csv"
    df = detect_landmarks(items, out, batch_size=2)
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))
    assert df["image_id"].tolist() == [i for i, _ in items]
    assert df["status"].tolist() == ["ok", "corrupt", "unreadable", "ok", "ok"]
    assert failures(df)["image_id"].tolist() == ["broken", "gone"]
    assert df.loc[df.status != "ok", "lex"].isna().all()
    back = read_landmarks_csv(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_nms_each_image_ignores_the_others():
    """torchvision's batched_nms offsets each image's boxes by the batch's largest coordinate, which
    rounds them; here another image's huge box must not change which of image 0's boxes survive."""
    g = torch.Generator().manual_seed(3)
    xy = torch.rand(200, 2, generator=g) * 40
    boxes = torch.cat([xy, xy + 10 + torch.rand(200, 2, generator=g) * 3], dim=1)
    scores = torch.rand(200, generator=g)
    alone = M._nms_each(boxes, scores, torch.zeros(200, dtype=torch.long), 0.5)
    far = torch.tensor([[0.0, 0.0, 3e6, 3e6]])
    both = M._nms_each(torch.cat([far, boxes]), torch.cat([torch.ones(1), scores]),
                       torch.cat([torch.ones(1, dtype=torch.long), torch.zeros(200, dtype=torch.long)]), 0.5)
    assert both.tolist() == (alone + 1).tolist() + [0]  # image 0's survivors, then image 1's box
    assert 0 < len(alone) < 200


def _batch_order_items(shared_data):
    """32 LFW images (one size) and 16 CelebA in-the-wild ones (many sizes)."""
    lfw = sorted((shared_data / "lfw-fold1" / "images").glob("*/*.jpg"))[::16][:32]
    celeba = sorted((shared_data / "celeba-sample" / "images").glob("*.jpg"))[:16]
    return [(f.stem, str(f)) for f in lfw + celeba]


def test_landmark_csv_does_not_depend_on_batch_or_order(shared_data, tmp_path):
    """An image's points are a function of that image: batch sizes 1, 16, 64 and a shuffled order
    write the same bytes, row for row (the file keeps the items' order, so rows are compared sorted)."""
    items = _batch_order_items(shared_data)
    shuffled = [items[k] for k in np.random.default_rng(7).permutation(len(items))]
    runs = {"batch 16": (items, 16), "batch 1": (items, 1), "batch 64": (items, 64), "shuffled": (shuffled, 16)}
    texts = {}
    for name, (order, batch) in runs.items():
        out = tmp_path / f"{name}.csv"
        detect_landmarks(order, out, batch_size=batch)
        header, *rows = out.read_text().splitlines()
        texts[name] = [header, *sorted(rows)]
    assert sum(line.split(",")[2] == "ok" for line in texts["batch 16"][1:]) >= 40  # status: faces found
    for name, text in texts.items():
        assert text == texts["batch 16"], f"{name}: " + next(
            f"{a} != {b}" for a, b in zip(text, texts["batch 16"]) if a != b)


def test_read_rgb_names_the_file(tmp_path):
    with pytest.raises(OSError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(OSError, match=r"cannot be decoded.*bad\.png"):
        read_rgb(tmp_path / "bad.png")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(shared_data, detector):
    images = [read_rgb(p) for _, p in _lfw_items(shared_data, 8)]
    cpu, gpu = detector.detect(images), M.MTCNN(device="cuda").detect(images)
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a.landmarks[0], b.landmarks[0], atol=0.05)


def test_bucket_padding_leaves_detections_as_in_an_exact_canvas(shared_data, detector, monkeypatch):
    """Images of different (odd) sizes in one P-Net bucket: each one's detections, bit for bit, are
    those it gets alone, in any order; and here also those on a canvas of exactly its size."""
    path = sorted((shared_data / "celeba-sample" / "images").glob("*.jpg"))[0]
    base = np.zeros((320, 320, 3), np.uint8)
    img = read_rgb(path)[:320, :320]
    base[:img.shape[0], :img.shape[1]] = img
    images = [np.ascontiguousarray(base[:h, :w]) for h, w in [(301, 259), (300, 262), (290, 300), (319, 317)]]
    assert len({M.pnet_bucket(*im.shape[:2]) for im in images}) == 1
    together, backwards = detector.detect(images), detector.detect(images[::-1])[::-1]
    alone = [detector.detect([im])[0] for im in images]
    monkeypatch.setattr(M, "PNET_BUCKET", 1)  # every image on a canvas of exactly its size
    exact = detector.detect(images)
    assert sum(len(d) for d in alone) >= 4
    for runs in zip(alone, together, backwards, exact):
        for field in ("boxes", "scores", "landmarks"):
            assert all(np.array_equal(getattr(runs[0], field), getattr(r, field)) for r in runs[1:])


def test_pnet_on_a_padded_canvas_matches_the_image_alone(detector):
    """P-Net outputs inside an odd-sized image are the same zero-padded into a larger canvas (given
    its extent) as on the image alone: box regression to the bit, face probability to the last bit
    or so (softmax takes a scalar exp at the end of each plane, vectorised elsewhere); without the
    extent the edge row and column differ."""
    rng = np.random.default_rng(3)
    pixels = torch.from_numpy(rng.integers(0, 256, (2, 3, 37, 45)).astype(np.float32))
    canvas = torch.zeros((2, 3, 64, 64))
    canvas[:, :, :37, :45] = pixels
    with torch.inference_mode():
        alone = detector.pnet(pixels.contiguous(memory_format=torch.channels_last))
        padded = detector.pnet(canvas.contiguous(memory_format=torch.channels_last), [(37, 45)] * 2)
        blind = detector.pnet(canvas.contiguous(memory_format=torch.channels_last))
    oh, ow = alone[0].shape[-2:]
    assert (oh, ow) == (math.ceil(35 / 2) - 4, math.ceil(43 / 2) - 4)
    assert torch.equal(alone[0], padded[0][..., :oh, :ow])
    torch.testing.assert_close(alone[1], padded[1][..., :oh, :ow], rtol=0, atol=1e-7)
    for a, b in zip(alone, blind):
        assert (a - b[..., :oh, :ow]).abs().max() > 1e-3
