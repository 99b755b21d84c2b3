"""MTCNN: weight mapping, pipeline pieces, and detection on real LFW images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

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
    big = detector.detect(images[:8])
    for a, b in zip(big, dets[:8]):
        np.testing.assert_allclose(a.landmarks[0], b.landmarks[0], atol=1e-3)


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
