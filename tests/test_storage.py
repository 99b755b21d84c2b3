"""Image arrays on disk: streamed writes, positional reads, damage detected."""
import numpy as np
import pytest

from srlrfr.storage import NpyArray, StorageError, write_npy


def _images(n=50, h=8, w=6):
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_streamed_write_is_a_plain_npy(tmp_path):
    a = _images()
    with write_npy(tmp_path / "a.npy", a.shape) as w:
        for start in range(0, len(a), 17):
            w.write(a[start:start + 17])
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)
    assert np.array_equal(np.load(tmp_path / "a.npy", mmap_mode="r")[3], a[3])


def test_reads_rows_in_any_order(tmp_path):
    a = _images()
    with write_npy(tmp_path / "a.npy", a.shape) as w:
        w.write(a)
    arr = NpyArray(tmp_path / "a.npy")
    assert arr.shape == a.shape and len(arr) == 50
    assert np.array_equal(arr.read(10, 20), a[10:20])
    idx = np.array([49, 0, 3, 3, 4, 5, 20, 2])
    assert np.array_equal(arr.take(idx), a[idx])
    assert np.array_equal(np.concatenate([c for _, c in arr.chunks(7)]), a)
    with pytest.raises(IndexError):
        arr.take([50])


def test_short_write_leaves_no_file(tmp_path):
    a = _images()
    with pytest.raises(StorageError, match="40 rows written, 50 declared"):
        with write_npy(tmp_path / "a.npy", a.shape) as w:
            w.write(a[:40])
    assert not (tmp_path / "a.npy").exists()
    with pytest.raises(StorageError, match="does not fit"):
        with write_npy(tmp_path / "b.npy", a.shape) as w:
            w.write(a[:, :4])
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_is_named(tmp_path):
    a = _images()
    with write_npy(tmp_path / "a.npy", a.shape) as w:
        w.write(a)
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:-100])
    with pytest.raises(StorageError, match=r"a\.npy is DAMAGED \(truncated.*delete it and download or copy"):
        NpyArray(tmp_path / "a.npy")
    (tmp_path / "data" / "aligned" / "x").mkdir(parents=True)
    bad = tmp_path / "data" / "aligned" / "x" / "images.npy"
    bad.write_bytes(b"not an array")
    with pytest.raises(StorageError, match=r"images\.npy is DAMAGED \(not a .npy.*delete it and rerun step align"):
        NpyArray(bad)
