"""Bad inputs, table-driven: each is refused with a message naming its file or key, the cause and the fix,
with no traceback, and nothing under results/ or models/ is written or left half-written.

The CLI cases run ``srlrfr.cli.main`` in this process (the same code path as
the command, exit status and stderr included); the operating-system faults
(file-size limit, read-only folder) and the Snakemake/DVC cases run real
subprocesses. Counts go to the session's reliability summary (conftest.COUNTS).
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from conftest import BIN, COUNTS, REPO, make_smoke_repo, run_env, shared_data_dir, silent

from srlrfr import cli
from srlrfr.models.dlib_format import encode_int, float_details_bytes

WORKING_STATE = {"train_log.csv"}  # training's resumable log: complete, not an output
SETTINGS = json.dumps({"fnet": "dlib_resnet34", "degrade": {"kernel": "cv2_bicubic"},
                       "evaluate": {"batch_size": 2, "device": "cpu"},
                       "train": {"srnet": {"type": "edsr", "n_blocks": 1, "n_feats": 8}, "batch_size": 2,
                                 "iterations": 2, "checkpoint_every": 1, "log_every": 1, "device": "cpu"}})


# ---------------------------------------------------------------- inputs the cases are built from

def sample_jpeg() -> bytes:
    import cv2
    img = np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def overlay(work: Path, doc: dict, name: str = "over.yaml") -> list[str]:
    write(work / name, yaml.safe_dump(doc))
    return ["--params", "params.yaml", name]


def tiny_lfw(work: Path, images: int = 2) -> None:
    """People A and B with two images each, and a pairs file of 1 set x 2 pairs per class."""
    rng = np.random.default_rng(1)
    for person in "AB":
        for i in range(1, images + 1):
            write(work / "lfw" / person / f"{person}_{i:04d}.jpg", rng.bytes(20_000))
    write(work / "pairs.txt", "1\t2\nA\t1\t2\nB\t1\t2\nA\t1\tB\t1\nA\t2\tB\t2\n")


def lfw_overlay(work: Path, **lfw) -> list[str]:
    return overlay(work, {"data": {"lfw": {"images": "lfw", "pairs": "pairs.txt", **lfw}},
                          "evaluate": {"folds": 2}})


def ingest_lfw(work: Path) -> list[str]:
    return ["ingest", "lfw", "--out", "data/index/lfw"]


def tiny_training_set(work: Path) -> tuple[str, str]:
    """8 random 160x160 crops (dlib geometry) as an aligned folder and its training pyramid."""
    import pandas as pd

    from srlrfr.steps.degrade import degrade
    from srlrfr.storage import write_npy
    from srlrfr.training.pyramid import PYRAMID_FACTORS
    aligned = work / "data" / "aligned" / "tiny"
    aligned.mkdir(parents=True)
    with write_npy(aligned / "images.npy", (8, 160, 160, 3)) as out:
        out.write(np.random.default_rng(2).integers(0, 255, (8, 160, 160, 3), dtype=np.uint8))
    pd.DataFrame({"image_id": [f"i{k}" for k in range(8)], "status": "ok", "landmark_ok": True}).to_csv(
        aligned / "faces.csv", index=False)
    degrade(aligned, PYRAMID_FACTORS, "cv2_bicubic", work / "data" / "degraded" / "tiny")
    return "data/aligned/tiny", "data/degraded/tiny"


def train_argv(work: Path, out_dir: str = "models/srnets/t/edsr_lambda0") -> list[str]:
    aligned, degraded = tiny_training_set(work)
    return ["train", "--settings", SETTINGS, "--aligned", aligned, "--degraded", degraded, "--lam", "0",
            "--out-dir", out_dir]


def metrics_inputs(work: Path) -> list[str]:
    """Two evaluations' metrics.json, as the aggregate step reads them."""
    files = []
    for method, res in (("hr", "160x160"), ("bicubic", "10x10")):
        m = {"fnet": "dlib_resnet34", "method": method, "resolution": res, "acc_mean": 90.0, "acc_std": 1.0,
             "folds": [0, 1], "fold_acc": [89.0, 91.0], "fold_thresholds": [0.2, 0.3], "auc": 0.9, "eer": 0.1,
             "n_pairs": 600, "n_excluded": 0, "tar_at_far": {"1e-2": {"tar": 0.5, "n_negative": 300}}}
        files.append(str(write(work / "evalin" / method / res / "metrics.json", json.dumps(m)).relative_to(work)))
        write(work / "evalin" / method / res / "scores.csv",  # the significance step reads them
              "pair,fold,label,score\n" + "".join(f"{i},{i % 2},{i % 2},0.{i}\n" for i in range(8)))
    return files


def aggregate_argv(work: Path) -> list[str]:
    return ["aggregate", "--settings", json.dumps({"lambda": 0.5, "fnet": "dlib_resnet34"}),
            "--metrics", *metrics_inputs(work), "--out-dir", "results"]


class Evil:
    """A pickle that runs a shell command when loaded (it must never be)."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def crafted_pickle(path: Path) -> Path:
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": Evil()}, path)
    return path


def dlib_file(tensor_version: int, dims: tuple[int, ...]) -> bytes:
    """A dlib network header up to its first conv layer, whose parameter tensor declares ``dims``."""
    def s(text: str) -> bytes:
        return encode_int(len(text)) + text.encode()
    head = encode_int(1) + s("loss_metric_") + encode_int(2) + s("input_rgb_image_sized")
    head += b"".join(float_details_bytes(v) for v in (122.782, 117.001, 104.298)) + encode_int(150) * 2
    return head + s("con_4") + encode_int(tensor_version) + b"".join(encode_int(d) for d in dims) + b"\0" * 64


def tgz(path: Path, members: dict[str, bytes | str], cut: float = 1.0) -> Path:
    """A .tgz of files (bytes) and symbolic links (str: the link's target), cut to a fraction of its bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return write(path, raw[:int(len(raw) * cut)])


def landmark_csv(work: Path, text: str) -> list[str]:
    write(work / "idx.csv", "image_id,path,identity\nA/A_0001.jpg,lfw/A/A_0001.jpg,A\n")
    write(work / "lm.csv", text)
    return [*overlay(work, {"align": {"landmarks": {"lfw": "lm.csv"}}}), "--index", "idx.csv",
            "--out", "data/landmarks/lfw.csv", "--report", "data/landmarks/lfw_no_face.csv"]


LM_HEADER = "image_id,lex,ley,rex,rey,nx,ny,lmx,lmy,rmx,rmy\n"


def images_index(work: Path, names: dict[str, bytes | None]) -> str:
    """An index of images: bytes are written as the file; None makes a folder in its place (unreadable)."""
    rows = ["image_id,path,identity"]
    for name, data in names.items():
        path = work / "imgs" / name
        if data is None:
            path.mkdir(parents=True)
        else:
            write(path, data)
        rows.append(f"{name},imgs/{name},x")
    write(work / "index.csv", "\n".join(rows) + "\n")
    return "index.csv"


# ---------------------------------------------------------------- the table

@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], list[str]]  # makes the inputs in the work folder, returns the srlrfr argv
    names: tuple[str, ...]              # what the message must name (file, key, member)
    cause: tuple[str, ...] = ()         # words of the cause or the fix


def _config(doc: dict) -> Callable[[Path], list[str]]:
    return lambda w: ["config", *overlay(w, doc)]


def _ingest_lfw(pairs: str | None = None, images: int = 2, archive: dict | None = None, cut: float = 1.0):
    """Ingest a tiny LFW: optionally another pairs text, fewer images, or an archive as the images source."""
    def build(w: Path) -> list[str]:
        tiny_lfw(w, images)
        if pairs is not None:
            write(w / "pairs.txt", pairs)
        if archive is not None:
            tgz(w / "lfw.tgz", archive, cut)
            return [*ingest_lfw(w), *lfw_overlay(w, images="lfw.tgz")]
        return [*ingest_lfw(w), *lfw_overlay(w)]
    return build


def _planted_cache_lock(w: Path) -> list[str]:
    """The shared cache's lock for the unpacked LFW is a link to someone's file: refused, the file untouched."""
    argv = _ingest_lfw(archive={f"lfw/{p}/{p}_000{i}.jpg": b"x" for p in "AB" for i in (1, 2)})(w)
    write(w / "victim.txt", "precious\n")
    locks = w / "data" / "downloads" / "lfw" / ".srlrfr-locks"  # the cache's lock of its unpacked lfw/
    locks.mkdir(parents=True)
    (locks / "lfw.lock").symlink_to(w / "victim.txt")
    return argv


def _ingest_celeba(identities: str, present: tuple[str, ...], **celeba) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        write(w / "celeba" / "identity_CelebA.txt", identities)
        for name in present:
            write(w / "celeba" / "images" / name, b"x")
        return ["ingest", "celeba", "--out", "data/index/celeba",
                *overlay(w, {"data": {"celeba": {"source": "celeba", **celeba}}})]
    return build


def _celeba_link_out(w: Path) -> list[str]:
    """A CelebA image that is a symbolic link to an LFW image: it would become training data."""
    tiny_lfw(w)
    argv = _ingest_celeba("000001.jpg 1\n000002.jpg 2\n", ("000001.jpg",))(w)
    (w / "celeba" / "images" / "000002.jpg").symlink_to(w / "lfw" / "A" / "A_0001.jpg")
    return argv


def _lfw_link_out(w: Path) -> list[str]:
    """An LFW image of the pairs that is a symbolic link out of the images folder."""
    tiny_lfw(w)
    target = write(w / "elsewhere" / "x.jpg", b"x")
    (w / "lfw" / "B" / "B_0002.jpg").unlink()
    (w / "lfw" / "B" / "B_0002.jpg").symlink_to(target)
    return [*ingest_lfw(w), *lfw_overlay(w)]


def _landmarks_csv(text: str | bytes) -> Callable[[Path], list[str]]:
    return lambda w: ["landmarks", "lfw", *landmark_csv(w, text)]


FACE_48x64 = np.array([14, 24, 34, 24, 24, 34, 16, 46, 32, 46], float)  # plausible in sample_jpeg's 48x64 image


def _landmark_rows(rows: dict[str, np.ndarray]) -> str:
    return LM_HEADER + "".join(f"{i}," + ",".join(f"{v:g}" for v in p) + "\n" for i, p in rows.items())


def _landmarks_given(points: np.ndarray) -> Callable[[Path], list[str]]:
    """A given landmark file whose only row is ``points``, for an image that exists (its size is known)."""
    def build(w: Path) -> list[str]:
        write(w / "lfw" / "A" / "A_0001.jpg", sample_jpeg())
        return ["landmarks", "lfw", *landmark_csv(w, _landmark_rows({"A/A_0001.jpg": points}))]
    return build


def _folds_local(w: Path) -> list[str]:
    tiny_lfw(w)
    return ["config", *overlay(w, {"data": {"lfw": {"pairs": "pairs.txt"}}, "evaluate": {"folds": 1000}})]


def _landmarks_fail(w: Path) -> list[str]:
    index = images_index(w, {"good.jpg": sample_jpeg(), "cut.jpg": sample_jpeg()[:400]})
    return ["landmarks", "lfw", "--index", index, "--out", "data/landmarks/lfw.csv",
            "--report", "data/landmarks/lfw_no_face.csv", *overlay(w, {"align": {"corrupt": "fail", "device": "cpu"}})]


def _align_fail(w: Path) -> list[str]:
    index = images_index(w, {"good.jpg": sample_jpeg(), "empty.jpg": b""})
    points = ",10,20,30,20,20,30,12,40,28,40\n"
    write(w / "lm.csv", LM_HEADER + "good.jpg" + points + "empty.jpg" + points)
    return ["align", "--index", index, "--landmarks", "lm.csv", "--geometry", "dlib_160x160",
            "--out", "data/aligned/x", *overlay(w, {"align": {"corrupt": "fail"}})]


def _dlib_weights(name: str, version: int, dims: tuple[int, ...]) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        write(w / name, dlib_file(version, dims))
        return ["fnet-weights", "--fnet", "dlib_resnet34", "--out", "models/fnets/dlib_resnet34.pt",
                *overlay(w, {"fnets": {"dlib_resnet34": {"weights": name}}})]
    return build


def _features_with(weights: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    def build(w: Path) -> list[str]:
        aligned = tiny_training_set(w)[0]
        return ["features", "--settings", SETTINGS, "--aligned", aligned,
                "--weights", str(weights(w).relative_to(w)), "--out", "results/f.npz"]
    return build


def _truncated_pt(w: Path) -> Path:
    return write(w / "downloads" / "cut.pt", crafted_pickle(w / "x.pt").read_bytes()[:300])


def _raw_overlay(text: str) -> Callable[[Path], list[str]]:
    """An overlay as written by hand (yaml.safe_dump would spell the numbers its own way)."""
    return lambda w: ["config", "--params", "params.yaml", write(w / "over.yaml", text).name]


def _train_diverging(w: Path) -> list[str]:
    """lr 1e30 passes the schema; the first update throws the weights to ~1e30 and step 2's loss overflows."""
    argv = train_argv(w)
    settings = json.loads(SETTINGS)
    settings["train"].update(lr=1e30, checkpoint_every=5)
    argv[argv.index("--settings") + 1] = json.dumps(settings)
    return argv


def _train_on_crafted_checkpoint(w: Path) -> list[str]:
    crafted_pickle(w / "models" / "srnets" / "t" / "edsr_lambda0" / "checkpoint.pt")
    return train_argv(w)


def _train_on_random_checkpoint(w: Path) -> list[str]:
    write(w / "models" / "srnets" / "t" / "edsr_lambda0" / "checkpoint.pt", np.random.default_rng(3).bytes(5000))
    return train_argv(w)


def _matrix_on_truncated_features(w: Path) -> list[str]:
    """A features .npz cut in half (a disk that filled up, a partial copy): numpy's BadZipFile names no file."""
    aligned = tiny_training_set(w)[0]
    write(w / "pairs.csv", "left,right,same\ni0,i1,1\ni2,i3,0\n")
    buf = io.BytesIO()
    np.savez(buf, ids=np.array([f"i{k}" for k in range(8)]), features=np.ones((8, 4), np.float32))
    hr = write(w / "results" / "features" / "lfw" / "dlib_resnet34" / "hr.npz", buf.getvalue()[:300])
    return ["matrix", "--pairs", "pairs.csv", "--aligned", aligned, "--full-features", str(hr.relative_to(w)),
            "--full-resolution", "160x160", "--features", str(hr.relative_to(w)), "--method", "bicubic",
            "--out", "results/matrix/dlib_resnet34/bicubic.csv"]


CASES = [
    # params
    Case("unknown key", _config({"train": {"iteratoins": 5}}), ("'train.iteratoins'",), ("allowed here",)),
    Case("lambda not a number", _config({"lambda": "abc"}), ("'lambda'",), ("number",)),
    Case("lambda NaN", _config({"lambda": float("nan")}), ("'lambda'",), ("finite",)),
    Case("lambda infinite", _config({"lambda": float("inf")}), ("'lambda'",), ("finite",)),
    Case("lambda negative", _config({"lambda": -1}), ("'lambda'",), ("minimum",)),
    Case("lambda with too many decimals", _config({"lambdas": [1e-30]}), ("'lambdas'",), ("fewer decimals",)),
    Case("unknown fnet", _config({"fnet": "nope"}), ("'fnet'",), ()),
    Case("factor not dividing the crop", _config({"fnet": "dlib_resnet34", "degrade": {"factors": [7]}}),
         ("'degrade.factors'",), ("divide",)),
    Case("unknown srnet kwarg", _config({"train": {"srnet": {"type": "edsr", "n_blokcs": 3}}}),
         ("'train.srnet.n_blokcs'",), ("allowed here",)),
    Case("YAML syntax error in an overlay",
         lambda w: ["config", "--params", "params.yaml", write(w / "bad.yaml", "train: {iterations: 5\n").name],
         ("bad.yaml", "line"), ("not valid YAML",)),
    Case("params not a mapping", lambda w: ["config", "--params", write(w / "list.yaml", "- 1\n").name],
         ("list.yaml",), ("mapping",)),
    Case("params file missing", lambda w: ["config", "--params", "params.yaml", "nowhere.yaml"],
         ("nowhere.yaml",), ("not found",)),
    Case("--settings not JSON", lambda w: ["config", "--settings", "{lambda: 1"], ("--settings",), ("JSON",)),
    Case("folds that the local pairs file cannot make", _folds_local, ("'evaluate.folds'", "pairs.txt"),
         ("cannot be split",)),
    Case("train.lr NaN", _config({"train": {"lr": float("nan")}}), ("'train.lr'",), ("finite",)),
    Case("SRNet res_scale infinite", _config({"train": {"srnet": {"type": "edsr", "res_scale": float("inf")}}}),
         ("'train.srnet.res_scale'",), ("finite",)),
    Case("FAR target NaN", _config({"report": {"far_targets": [0.01, float("nan")]}}), ("'report.far_targets'",),
         ("finite",)),
    Case("YAML 1.2 number overflowing to infinity", _raw_overlay("lambda: 1e400\n"), ("'lambda'",), ("finite",)),
    Case("number in exponent form gone wrong", _raw_overlay("lambda: 1e-05x\n"), ("'lambda'",), ("number",)),
    Case("negative seed", _config({"train": {"seed": -1}}), ("'train.seed'",), ("minimum",)),
    Case("SRNet size 0", _config({"train": {"srnet": {"type": "edsr", "n_feats": 0}}}), ("'train.srnet.n_feats'",),
         (">= 1",)),
    Case("threshold_steps too many", _config({"evaluate": {"threshold_steps": 10**9}}),
         ("'evaluate.threshold_steps'",), ("maximum",)),
    Case("duplicate baselines", _config({"evaluate": {"baselines": ["bicubic", "bicubic"]}}),
         ("'evaluate.baselines'",), ("non-unique",)),
    Case("folds that the official pairs file cannot make", _config({"evaluate": {"folds": 15}}),
         ("'evaluate.folds'", "official"), ("multiple",)),
    # datasets and archives
    Case("pairs file with a malformed line", _ingest_lfw(pairs="1\t2\nA\t1\t2\nB\t1\nA\t1\tB\t1\nA\t2\tB\t2\n"),
         ("pairs.txt:3",), ("expected",)),
    Case("pairs file naming missing images", _ingest_lfw(images=1), ("pairs.txt", "A/A_0002.jpg"), ("not under",)),
    Case("pairs file with a bad header", _ingest_lfw(pairs="LFW pairs\n"), ("pairs.txt",), ("first line",)),
    Case("truncated lfw.tgz", _ingest_lfw(archive={f"lfw/A/A_000{i}.jpg": np.random.default_rng(i).bytes(30_000)
                                                   for i in (1, 2)}, cut=0.5), ("lfw.tgz",), ("truncated", "again")),
    Case("archive member escaping with ..", _ingest_lfw(archive={"../evil.txt": b"x"}), ("lfw.tgz", "evil.txt"),
         ("nothing was extracted",)),
    Case("archive with a symlink to an absolute path",
         _ingest_lfw(archive={"lfw/A/A_0001.jpg": b"x", "lfw/A/A_0002.jpg": "/etc/passwd"}),
         ("lfw.tgz", "A_0002.jpg"), ("nothing was extracted",)),
    Case("shared cache lock planted as a link", _planted_cache_lock, (".srlrfr-locks/lfw.lock",),
         ("symbolic link", "rm ")),
    Case("CelebA images missing with data.celeba.missing: error",
         _ingest_celeba("000001.jpg 1\n000002.jpg 1\n000003.jpg 2\n", ("000001.jpg",), missing="error"),
         ("identity_CelebA.txt", "data.celeba.missing", "000002.jpg"), ("2 of the 3", "extract")),
    Case("CelebA identity line leaving the images folder with ..",
         _ingest_celeba("000001.jpg 1\n../../lfw/A/A_0001.jpg 2\n", ("000001.jpg",)),
         ("identity_CelebA.txt:2", "../../lfw/A/A_0001.jpg"), ("leaves the dataset's folder",)),
    Case("CelebA image that is a link to an LFW image", _celeba_link_out, ("identity_CelebA.txt:2", "000002.jpg"),
         ("outside the dataset's folder",)),
    Case("pairs file naming a person with a path", _ingest_lfw(pairs="1\t2\nA\t1\t2\nB\t1\t2\nA\t1\t../B\t1\n"
                                                                 "A\t2\tB\t2\n"),
         ("pairs.txt:4", "'../B'"), ("not a folder name",)),
    Case("pairs image that is a link out of the images folder", _lfw_link_out, ("pairs.txt:3", "B/B_0002.jpg"),
         ("outside the dataset's folder",)),
    Case("CelebA identity file with a malformed line",
         _ingest_celeba("000001.jpg 1\n000002.jpg one\n", ("000001.jpg",)), ("identity_CelebA.txt:2",), ("expected",)),
    # landmark files
    Case("landmark CSV without a column", _landmarks_csv("image_id,lex,ley\nA/A_0001.jpg,1,2\n"), ("lm.csv", "header"),
         ("missing column",)),
    Case("landmark CSV with a non-number", _landmarks_csv(LM_HEADER + "A/A_0001.jpg,1,2,3,4,5,six,7,8,9,10\n"),
         ("lm.csv, line 2", "'ny'"), ("not a number",)),
    Case("landmark CSV that is binary", _landmarks_csv(b"\xff\xd8\xff\xe0" + bytes(range(256))), ("lm.csv",),
         ("not a landmark CSV",)),
    Case("landmark CSV with a field over csv's limit",
         _landmarks_csv(LM_HEADER + "A/A_0001.jpg," + "1" * 200_000 + ",2,3,4,5,6,7,8,9,10\n"), ("lm.csv",),
         ("field",)),
    Case("landmark CSV missing an indexed image", _landmarks_csv(LM_HEADER + "B/B_0001.jpg,1,2,3,4,5,6,7,8,9,10\n"),
         ("lm.csv",), ("no row",)),
    Case("landmark CSV naming an image outside the dataset",
         _landmarks_csv(LM_HEADER + "../celeba/A/A_0001.jpg,1,2,3,4,5,6,7,8,9,10\n"), ("lm.csv, line 2",
                                                                                       "../celeba/A/A_0001.jpg"),
         ("leaves the dataset's folder",)),
    Case("authors' landmark layout naming an absolute path",
         _landmarks_csv("/data/lfw/A/A_0001.jpg,1,2,3,4,5,6,7,8,9,10\n"), ("lm.csv, line 1", "/data/lfw/A"),
         ("leaves the dataset's folder",)),
    Case("landmark file scaled by 1e6", _landmarks_given(FACE_48x64 * 1e6), ("lm.csv", "A/A_0001.jpg"),
         ("not a face's landmarks", "wider than the image")),
    Case("landmark file of all-zero rows", _landmarks_given(FACE_48x64 * 0), ("lm.csv", "A/A_0001.jpg"),
         ("not a face's landmarks", "eye distance")),
    # damaged images under align.corrupt: fail
    Case("truncated image, landmarks with align.corrupt: fail", _landmarks_fail, ("imgs/cut.jpg", "align.corrupt"),
         ("corrupt", "replace the file")),
    Case("zero-byte image, align with align.corrupt: fail", _align_fail, ("imgs/empty.jpg", "align.corrupt"),
         ("0 bytes",)),
    # weights and checkpoints
    Case("dlib .dat declaring a huge tensor", _dlib_weights("huge.dat", 1, (1 << 20, 1 << 20, 64, 1)),
         ("huge.dat", "con_4"), ("too large",)),
    Case("dlib .dat whose dimensions overflow", _dlib_weights("ovf.dat", 2, (1 << 62, 1 << 62, 4, 1)),
         ("ovf.dat", "con_4"), ("too large",)),
    Case("crafted pickle as FNet weights", _features_with(lambda w: crafted_pickle(w / "downloads" / "evil.pt")),
         ("downloads/evil.pt",), ("refused", "can run code")),
    Case("truncated FNet weights", _features_with(_truncated_pt), ("downloads/cut.pt",),
         ("DAMAGED", "corrupt or truncated", "delete it and download or copy it again")),
    Case("training that diverges (train.lr 1e30)", _train_diverging, ("train.lr", "step 2"),
         ("diverged", "Nothing was saved as model.pt")),
    Case("crafted pickle as a training checkpoint", _train_on_crafted_checkpoint, ("edsr_lambda0/checkpoint.pt",),
         ("refused",)),
    # damaged files srlrfr wrote: DAMAGED (not "crafted"), with the step that remakes them
    Case("random bytes as a training checkpoint", _train_on_random_checkpoint, ("edsr_lambda0/checkpoint.pt",),
         ("DAMAGED", "delete it and rerun step train")),
    Case("truncated features .npz", _matrix_on_truncated_features, ("results/features/lfw/dlib_resnet34/hr.npz",),
         ("DAMAGED", "BadZipFile", "delete it and rerun step features")),
]


def snapshot(work: Path) -> dict[str, str]:
    out = {}
    for top in ("results", "models"):
        for p in sorted((work / top).rglob("*")):
            if p.is_file() and p.name not in WORKING_STATE:
                out[str(p.relative_to(work))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    """A project folder: the repository's params.yaml, and results/ and models/ holding earlier outputs."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    write(tmp_path / "results" / "metrics.json", '{"earlier": true}\n')
    write(tmp_path / "models" / "fnets" / "earlier.pt", b"earlier")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check_refused(work: Path, rc: int, err: str, names, cause, before: dict[str, str]) -> None:
    assert not silent(rc == 0), "accepted a bad input"
    assert "Traceback" not in err, err
    missing = [n for n in (*names, *cause) if n not in err]
    assert not missing, f"message does not name {missing}:\n{err}"
    assert snapshot(work) == before, "results/ or models/ changed"
    leftovers = [str(p) for top in ("results", "models") for p in (work / top).rglob(".*.tmp")]
    assert not leftovers, leftovers


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_clearly(case: Case, work: Path, capsys):
    COUNTS["bad inputs tried"] += 1
    argv = case.build(work)
    before = snapshot(work)
    capsys.readouterr()
    rc = cli.main(argv)
    err = capsys.readouterr().err
    check_refused(work, rc, err, case.names, case.cause, before)
    assert not (work / "pwned").exists(), "a crafted pickle ran code"
    COUNTS["bad inputs rejected with a clear message"] += 1


# ---------------------------------------------------------------- the disk refusing writes

def test_disk_full_in_aggregate(work: Path, capsys, monkeypatch):
    """ENOSPC while writing a table: named as the output, 'disk is full', and what to do."""
    import pandas as pd
    COUNTS["bad inputs tried"] += 1
    argv = aggregate_argv(work)
    before = snapshot(work)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    rc = cli.main(argv)
    check_refused(work, rc, capsys.readouterr().err, ("results/summary.csv",), ("disk is full", "df -h"), before)
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_disk_full_in_train(work: Path, capsys, monkeypatch):
    """torch reports a full disk as '[enforce fail ...] unexpected pos': it must say the disk is full."""
    import torch
    COUNTS["bad inputs tried"] += 1
    argv = train_argv(work)
    before = snapshot(work)

    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    monkeypatch.setattr(torch, "save", full)
    rc = cli.main(argv)
    check_refused(work, rc, capsys.readouterr().err, ("edsr_lambda0/checkpoint.pt",), ("disk is full",), before)
    COUNTS["bad inputs rejected with a clear message"] += 1


def _cli_subprocess(argv: list[str], cwd: Path, *, fsize: int | None = None,
                    no_root_override: bool = False) -> subprocess.CompletedProcess:
    """``python -m srlrfr`` with a real OS limit: a file-size limit (RLIMIT_FSIZE), or, for root,
    without the capability that lets root write into read-only folders."""
    cmd = [sys.executable, "-m", "srlrfr", *argv]
    if no_root_override and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", *cmd]

    def limit() -> None:
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    env = run_env(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=limit if fsize else None)


@pytest.mark.parametrize("step", ["aggregate", "train"])
def test_file_size_limit_is_named(step: str, work: Path):
    """A real write refused by the OS (ulimit -f): the output, the cause and the fix, no traceback."""
    COUNTS["bad inputs tried"] += 1
    argv = aggregate_argv(work) if step == "aggregate" else train_argv(work)
    before = snapshot(work)
    out = _cli_subprocess(argv, work, fsize=300 if step == "aggregate" else 20_000)
    names = ("results/",) if step == "aggregate" else ("edsr_lambda0/checkpoint.pt",)
    check_refused(work, out.returncode, out.stderr, names, ("file-size limit", "ulimit -f"), before)
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_read_only_output_folder(work: Path):
    COUNTS["bad inputs tried"] += 1
    argv = aggregate_argv(work)
    before = snapshot(work)
    os.chmod(work / "results", 0o555)
    try:
        out = _cli_subprocess(argv, work, no_root_override=True)
    finally:
        os.chmod(work / "results", 0o755)
    check_refused(work, out.returncode, out.stderr, ("results/summary.csv",), ("permission denied", "ls -ld"), before)
    COUNTS["bad inputs rejected with a clear message"] += 1


# ---------------------------------------------------------------- permissions: a planted lease folder

@pytest.mark.parametrize("planted", ["folder link", "lock file link"])
def test_planted_gpu_lease_folder_is_refused(planted: str, tmp_path: Path, monkeypatch):
    """Another user plants the lease folder (or a lock in it) as a link: refused, the target never touched."""
    from srlrfr import leases
    COUNTS["bad inputs tried"] += 1
    target = tmp_path / "victim"
    target.mkdir(mode=0o755)
    (target / "gpu-a.lock").write_text("precious\n")
    locks = tmp_path / "srlrfr-gpu-locks"
    if planted == "folder link":
        locks.symlink_to(target)
    else:
        locks.mkdir()
        (locks / "gpu-a.lock").symlink_to(target / "gpu-a.lock")
    monkeypatch.setenv(leases.LOCK_DIR_ENV, str(locks))
    with pytest.raises(leases.LeaseFolderError) as err:
        leases.try_lease("gpu-a")
    assert str(locks) in str(err.value) and "symbolic link" in str(err.value) and leases.LOCK_DIR_ENV in str(err.value)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and (target / "gpu-a.lock").read_text() == "precious\n"
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_default_gpu_lease_folder_is_the_users_own(tmp_path: Path, monkeypatch):
    from srlrfr import leases
    monkeypatch.delenv(leases.LOCK_DIR_ENV, raising=False)
    monkeypatch.setattr(leases.tempfile, "gettempdir", lambda: str(tmp_path))
    try:
        assert leases.try_lease("gpu-z")
    finally:
        leases.release_all()
    st = os.lstat(tmp_path / f"srlrfr-gpu-locks-{os.getuid()}")
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700


# ---------------------------------------------------------------- damaged images are recorded, not scored

def test_damaged_images_get_their_own_status(work: Path, capsys):
    """Truncated, empty and unreadable images: 'corrupt'/'unreadable' (not no_face) in the landmark CSV and
    faces.csv, named on the console; the run goes on (align.corrupt: exclude)."""
    import pandas as pd
    if shared_data_dir() is None:
        pytest.skip("sample data not present")
    good = shared_data_dir() / "lfw-fold1" / "images" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    COUNTS["bad inputs tried"] += 1
    jpeg = good.read_bytes()
    index = images_index(work, {"good.jpg": jpeg, "cut.jpg": jpeg[:len(jpeg) // 2], "nearly.jpg": jpeg[:-2],
                                "empty.jpg": b"", "dir.jpg": None})
    over = overlay(work, {"align": {"device": "cpu", "min_face_size": 40}})
    assert cli.main(["landmarks", "lfw", "--index", index, "--out", "lm.csv", "--report", "bad.csv", *over]) == 0
    out = capsys.readouterr().out
    status = pd.read_csv(work / "lm.csv").set_index("image_id")["status"].to_dict()
    assert status == {"good.jpg": "ok", "cut.jpg": "corrupt", "nearly.jpg": "corrupt", "empty.jpg": "corrupt",
                      "dir.jpg": "unreadable"}
    assert "3 corrupt, 1 unreadable" in out and "imgs/cut.jpg" in out and "imgs/dir.jpg" in out
    assert cli.main(["align", "--index", index, "--landmarks", "lm.csv", "--geometry", "dlib_160x160",
                     "--out", "aligned", *over]) == 0
    assert "3 corrupt and 1 unreadable" in capsys.readouterr().out
    faces = pd.read_csv(work / "aligned" / "faces.csv").set_index("image_id")
    assert faces["status"].to_dict() == status and faces["landmark_ok"].sum() == 1
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_implausible_landmarks_are_excluded_and_counted(work: Path, capsys):
    """Rows times 1e6, negated or all zero are bad_landmarks (every row checked, any source): listed with the
    image and reason, never aligned from their points (landmark_ok False), counted like no_face."""
    import pandas as pd
    COUNTS["bad inputs tried"] += 1
    jpeg = sample_jpeg()
    names = ["good1.jpg", "good2.jpg", "good3.jpg", "huge.jpg", "negative.jpg", "zero.jpg"]
    index = images_index(work, dict.fromkeys(names, jpeg))
    points = {"good1.jpg": FACE_48x64, "good2.jpg": FACE_48x64 + 1, "good3.jpg": FACE_48x64 - 1,
              "huge.jpg": FACE_48x64 * 1e6, "negative.jpg": -FACE_48x64, "zero.jpg": FACE_48x64 * 0}
    write(work / "given.csv", _landmark_rows(points))
    over = overlay(work, {"align": {"device": "cpu", "landmark_check": "off", "landmarks": {"lfw": "given.csv"}}})
    assert cli.main(["landmarks", "lfw", "--index", index, "--out", "lm.csv", "--report", "bad.csv", *over]) == 0
    out = capsys.readouterr().out
    bad = {"huge.jpg", "negative.jpg", "zero.jpg"}
    assert pd.read_csv(work / "lm.csv").set_index("image_id")["status"].to_dict() == \
        {n: "bad_landmarks" if n in bad else "ok" for n in names}
    report = pd.read_csv(work / "bad.csv")
    assert set(report["image_id"]) == bad and report["reason"].notna().all()
    assert "3 bad_landmarks" in out and "imgs/huge.jpg (eye distance" in out
    # the align step checks again, whatever wrote the file: here a CSV that calls every row ok
    write(work / "all_ok.csv", _landmark_rows(points))
    assert cli.main(["align", "--index", index, "--landmarks", "all_ok.csv", "--geometry", "dlib_160x160",
                     "--out", "aligned", *over]) == 0
    assert "3 of them with landmarks that are not a face's" in capsys.readouterr().out
    faces = pd.read_csv(work / "aligned" / "faces.csv").set_index("image_id")
    assert faces.loc[sorted(bad), "status"].eq("bad_landmarks").all()
    assert faces["landmark_ok"].to_dict() == {n: n not in bad for n in names}
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_shifted_landmark_file_is_refused_naming_the_shift(work: Path, capsys):
    """A landmark file made for a copy of the images shifted by (+10, +8) px: the shape fits after the common
    offset, the offset itself does not; refused, with 'shifted' as the likely cause."""
    from srlrfr.face.detect import detect_landmarks
    from srlrfr.face.landmarks_io import LANDMARK_COLUMNS
    if shared_data_dir() is None:
        pytest.skip("sample data not present")
    COUNTS["bad inputs tried"] += 1
    files = sorted((shared_data_dir() / "lfw-fold1" / "images").glob("*/*_0001.jpg"))[:6]
    ids = [f"{f.parent.name}/{f.name}" for f in files]
    index = images_index(work, {i: f.read_bytes() for i, f in zip(ids, files)})
    found = detect_landmarks([(i, str(work / "imgs" / i)) for i in ids], work / "found.csv", min_face_size=40)
    assert (found["status"] == "ok").all()
    shifted = found[LANDMARK_COLUMNS].to_numpy(float) + np.tile([10.0, 8.0], 5)
    write(work / "LFW.csv", "".join(f"{i}," + ",".join(f"{v:.3f}" for v in p) + "\n" for i, p in zip(ids, shifted)))
    over = overlay(work, {"align": {"device": "cpu", "min_face_size": 40, "landmarks": {"lfw": "LFW.csv"}}})
    before = snapshot(work)
    capsys.readouterr()
    rc = cli.main(["landmarks", "lfw", "--index", index, "--out", "lm.csv", "--report", "bad.csv", *over])
    check_refused(work, rc, capsys.readouterr().err, ("LFW.csv", "common offset (+10."),
                  ("Likely cause: shifted", "original lfw.tgz"), before)
    assert not (work / "lm.csv").exists()
    COUNTS["bad inputs rejected with a clear message"] += 1


def test_missing_celeba_images_are_counted(work: Path, capsys):
    COUNTS["bad inputs tried"] += 1
    write(work / "celeba" / "identity_CelebA.txt", "000001.jpg 1\n000002.jpg 1\n000003.jpg 2\n")
    write(work / "celeba" / "images" / "000001.jpg", b"x")
    write(work / "celeba" / "images" / "000003.jpg", b"x")
    over = overlay(work, {"data": {"celeba": {"source": "celeba"}}})
    assert cli.main(["ingest", "celeba", "--out", "idx", *over]) == 0
    assert "1 MISSING (e.g. 000002.jpg)" in capsys.readouterr().out
    summary = json.loads((work / "idx" / "summary.json").read_text())
    assert summary["listed"] == 3 and summary["missing"] == 1 and summary["indexed"] == 2
    assert summary["missing_examples"] == ["000002.jpg"]
    COUNTS["bad inputs rejected with a clear message"] += 1


@pytest.mark.slow
def test_evaluation_excludes_and_counts_damaged_images(smoke_reference: Path, tmp_path: Path):
    """Pairs touching a corrupt or unreadable image are never scored: n_excluded by cause in metrics.json, the
    step's console, summary.csv and the report."""
    import pandas as pd
    COUNTS["bad inputs tried"] += 1
    from test_faults import pick, stage_inputs
    job = pick(smoke_reference, "evaluate", "/hr/")
    work = tmp_path / "work"
    stage_inputs(job, smoke_reference, work)
    aligned = next(p for p in job.inputs if p.startswith("data/aligned/"))
    faces = pd.read_csv(work / aligned / "faces.csv")
    pairs = pd.read_csv(work / "data" / "index" / "lfw" / "pairs.csv")
    bad = {pairs["left"].iloc[0]: "corrupt", pairs["right"].iloc[-1]: "unreadable"}
    faces.loc[faces["image_id"].isin(bad), "status"] = faces["image_id"].map(bad)
    faces.loc[faces["image_id"].isin(bad), "landmark_ok"] = False
    faces.to_csv(work / aligned / "faces.csv", index=False)
    out = subprocess.run(job.shellcmd.split(" > ")[0], shell=True, cwd=work, env=run_env(), capture_output=True,
                         text=True, timeout=1200)
    assert out.returncode == 0, out.stderr
    cause = [next((c for c in ("unreadable", "corrupt") if c in (bad.get(a), bad.get(b))), "")
             for a, b in zip(pairs["left"], pairs["right"])]  # a pair counts under its worst image
    touching = {c: cause.count(c) for c in ("unreadable", "corrupt")}
    metrics = json.loads((work / [o for o in job.outputs if o.endswith("metrics.json")][0]).read_text())
    assert metrics["excluded"] == {"unreadable": touching["unreadable"], "corrupt": touching["corrupt"], "no_face": 0}
    assert metrics["n_excluded"] == sum(touching.values()) and metrics["n_pairs"] == len(pairs) - sum(touching.values())
    assert f"{sum(touching.values())} excluded (unreadable {touching['unreadable']}, corrupt {touching['corrupt']}" \
        in out.stdout
    from srlrfr.report.tables import collect, exclusion_note
    summary = collect([work / o for o in job.outputs if o.endswith("metrics.json")])
    assert summary["excluded_corrupt"].iloc[0] == touching["corrupt"]
    assert f"{touching['corrupt']} corrupt" in exclusion_note(summary)
    COUNTS["bad inputs rejected with a clear message"] += 1


# ---------------------------------------------------------------- through Snakemake and DVC

@pytest.fixture(scope="module")
def snake_repo(tmp_path_factory, repo_root: Path, shared_data: Path) -> Path:
    return make_smoke_repo(tmp_path_factory.mktemp("bad") / "repo", repo_root, shared_data)


def snakemake(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), "-n", *args], cwd=repo, env=run_env(), capture_output=True,
                          text=True, timeout=600)


SNAKE_CASES = [  # (name, extra arguments, files to write, what the message names, clear?)
    ("evaluate.folds against the pairs file, at DAG time", ["--configfile", "params.yaml", "over.yaml"],
     {"over.yaml": "evaluate: {folds: 1000}\n"}, ("'evaluate.folds'", "pairs.txt"), True),
    ("lambda not a number via --config", ["--config", "lambda=abc"], {}, ("'lambda'",), True),
    ("YAML syntax error in params.yaml", [], {"params.yaml": None}, ("params.yaml", "line"), True),
    # Snakemake parses --configfile itself before any workflow code runs, and its message names no file:
    # `srlrfr config --params params.yaml over.yaml` does (the overlay case in CASES).
    ("YAML syntax error in an overlay given to Snakemake", ["--configfile", "params.yaml", "over.yaml"],
     {"over.yaml": "train: {iterations: 5\n"}, ("over.yaml",), False),
]


@pytest.mark.parametrize("name, args, files, names, clear", SNAKE_CASES, ids=[c[0] for c in SNAKE_CASES])
def test_bad_input_through_snakemake(name, args, files, names, clear, snake_repo: Path, tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(snake_repo, repo, symlinks=True)
    for rel, text in files.items():
        write(repo / rel, (repo / rel).read_text() + "train: {iterations: 5\n" if text is None else text)
    COUNTS["bad inputs tried"] += 1
    out = snakemake(repo, "all", *args)
    text = out.stdout + out.stderr
    assert not silent(out.returncode == 0), text
    assert not (repo / "results" / "eval").exists() and not (repo / "models" / "srnets").exists()
    if clear:
        assert all(n in text for n in names), text
        COUNTS["bad inputs rejected with a clear message"] += 1
    else:  # documented in docs/reliability.md: the message does not name the file (Snakemake's own parser)
        assert "Config file is not valid JSON or YAML" in text


def test_small_lambda_plans_its_own_jobs(snake_repo: Path):
    """lambda = 1e-05 is a decimal tag the rules match: the dry run plans its training and evaluations."""
    out = snakemake(snake_repo, "all", "--config", "lambda=0.00001")
    assert out.returncode == 0, out.stderr
    assert "edsr_lambda0.00001/model.pt" in out.stdout and "/edsr_lambda0.00001/10x10/metrics.json" in out.stdout
    assert "lambda1e-05" not in out.stdout  # (the value itself may print as 1e-05 in the settings JSON)


def test_dvc_exp_run_with_a_bad_value(snake_repo: Path, tmp_path: Path):
    """`dvc exp run -S lambda=abc`: the error names the key and says how to restore params.yaml."""
    repo = tmp_path / "repo"
    shutil.copytree(snake_repo, repo, symlinks=True)
    original = (repo / "params.yaml").read_text()
    COUNTS["bad inputs tried"] += 1
    out = subprocess.run([str(BIN / "dvc"), "exp", "run", "-S", "lambda=abc"], cwd=repo, env=run_env(),
                         capture_output=True, text=True, timeout=900)
    text = out.stdout + out.stderr
    assert not silent(out.returncode == 0), text
    assert "key 'lambda'" in text and "git show HEAD:params.yaml > params.yaml" in text, text
    assert (repo / "params.yaml").read_text() != original  # DVC leaves its edit in place ...
    # from HEAD's blob, not through the index: after DVC's edit the index's stat data can still
    # match the file (same size, same mtime), and `git checkout -- params.yaml` then keeps the bad value
    subprocess.run("git show HEAD:params.yaml > params.yaml", shell=True, cwd=repo, check=True)
    assert (repo / "params.yaml").read_text() == original  # ... and the command we print restores it
    assert not (repo / "results" / "eval").exists() and not (repo / "models" / "srnets").exists()
    COUNTS["bad inputs rejected with a clear message"] += 1
