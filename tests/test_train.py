"""SRNet training loop on tiny presets (CPU): the multi-scale scheme, resume
after a kill equals an uninterrupted run, config guards, and lam > 0 with an
honestly random-initialised tiny SphereFace-20 (plumbing, not recognition)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from srlrfr.models.base import SRNetSpec
from srlrfr.models.fnet import FaceRecognizer
from srlrfr.models.fnets.sphereface import SphereFace20
from srlrfr.models.srnet import load_srnet, super_resolve
from srlrfr.models.srnets.edsr import EDSR
from srlrfr.registry import FNETS, SRNETS
from srlrfr.training import BatchSampler, PyramidData, RunControl, TrainOptions, train_srnet
from srlrfr.training.pyramid import InMemory

torch.set_num_threads(1)

TINY = {"n_blocks": 2, "n_feats": 8}


def smooth_faces() -> np.ndarray:
    """Smooth random 112x96 'faces' (a low-frequency field, so downsampling means something)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (6, 7, 6, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)


@pytest.fixture(scope="module")
def hr_images() -> np.ndarray:
    return smooth_faces()


def random_tiny_sphereface20(seed: int = 0) -> FaceRecognizer:
    """sphereface20's registered spec with a narrow backbone left at its RANDOM init."""
    spec = dataclasses.replace(FNETS.get("sphereface20"),
                               build=lambda: SphereFace20(widths=(4, 8, 8, 8), feature_dim=16), feature_dim=16)
    torch.manual_seed(seed)
    return FaceRecognizer(spec, spec.build())


OPTION_NAMES = {f.name for f in dataclasses.fields(TrainOptions)}
CONTROL_NAMES = {f.name for f in dataclasses.fields(RunControl)}


def run(hr, out_dir, arch="edsr", arch_kwargs=TINY, **kw):
    """train_srnet on a tiny preset; option keywords (iterations, ...) override the preset's, control
    keywords (step_callback, ...) the CPU without a progress bar."""
    options = dict(batch_size=3, iterations=6, checkpoint_every=2, log_every=1, seed=3)
    options.update({k: kw.pop(k) for k in list(kw) if k in OPTION_NAMES})
    control = dict(device="cpu", progress=False)
    control.update({k: kw.pop(k) for k in list(kw) if k in CONTROL_NAMES})
    args = dict(fnet=random_tiny_sphereface20(), lam=0.5)
    args.update(kw)
    return train_srnet(hr, out_dir=out_dir, srnet={"type": arch, **arch_kwargs},
                       options=TrainOptions(**options), control=RunControl(**control), **args)


class Killed(Exception):
    pass


def test_resume_after_kill_equals_uninterrupted_run(hr_images, tmp_path):
    straight = run(hr_images, tmp_path / "straight")

    def kill_at_5(step, losses):
        if step == 5:
            raise Killed  # after step 5 was logged; last checkpoint is step 4

    with pytest.raises(Killed):
        run(hr_images, tmp_path / "resumed", step_callback=kill_at_5)
    log_after_kill = (tmp_path / "resumed" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log_after_kill[1:]] == ["1", "2", "3", "4", "5"]
    assert not (tmp_path / "resumed" / "model.pt").exists()
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["step"] == 4

    resumed = run(hr_images, tmp_path / "resumed")
    a, _ = load_srnet(straight)
    b, _ = load_srnet(resumed)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    log_a = (tmp_path / "straight" / "train_log.csv").read_text()
    log_b = (tmp_path / "resumed" / "train_log.csv").read_text()
    assert log_a == log_b
    assert len(log_a.splitlines()) == 7  # header + 6 steps, no duplicates


def test_resume_with_different_config_is_refused(hr_images, tmp_path):
    run(hr_images, tmp_path, iterations=2)
    with pytest.raises(ValueError, match=r"different run.*\n.*lam: checkpoint 0.5 vs now 0.25"):
        run(hr_images, tmp_path, iterations=2, lam=0.25)


def test_stale_checkpoint_set_aside_when_asked(hr_images, tmp_path):
    run(hr_images, tmp_path, iterations=2)
    run(hr_images, tmp_path, iterations=2, lam=0.25, stale_checkpoint="set_aside")
    stale = list(tmp_path.glob("checkpoint.stale-*.pt"))
    assert len(stale) == 1 and (tmp_path / "checkpoint.pt").exists()
    fresh = run(hr_images, tmp_path / "fresh", iterations=2, lam=0.25)
    assert torch.equal(load_srnet(tmp_path / "model.pt")[0].conv1.weight, load_srnet(fresh)[0].conv1.weight)


def test_lambda_changes_training_and_model_metadata(hr_images, tmp_path):
    with_id = run(hr_images, tmp_path / "lam", iterations=3)
    without = run(hr_images, tmp_path / "zero", iterations=3, lam=0.0, fnet=None)
    m1, info1 = load_srnet(with_id)
    m0, info0 = load_srnet(without)
    assert info1["channel_order"] == "rgb"
    assert info1["meta"]["lambda"] == 0.5 and info1["meta"]["fnet"] == "sphereface20"
    assert info1["meta"]["seed"] == 3 and info1["meta"]["iterations"] == 3
    assert info0["meta"]["fnet"] is None
    # Same seed, same data order: only the identity term differs, and it moves the weights.
    assert not torch.equal(m1.conv1.weight, m0.conv1.weight)

    rows1 = (tmp_path / "lam" / "train_log.csv").read_text().splitlines()[1:]
    rows0 = (tmp_path / "zero" / "train_log.csv").read_text().splitlines()[1:]
    step, lr, pix, ident, total = (float(v) for v in rows1[0].split(","))
    assert lr == 1e-4 and ident > 0 and total == pytest.approx(pix + 0.5 * ident, rel=1e-6)
    assert rows0[0].split(",")[3] == ""  # identity term not computed at lam = 0
    assert rows0[0].split(",")[2] == rows1[0].split(",")[2]  # first step's pixel loss identical

    out = super_resolve(m1, info1, hr_images[:2, ::4, ::4].copy(), batch_size=2)
    assert out.shape == (2, 112, 96, 3)


def test_lr_schedule_halves(hr_images, tmp_path):
    run(hr_images, tmp_path, iterations=5, lr_step=2, lam=0.0, fnet=None)
    lrs = [float(r.split(",")[1]) for r in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert lrs == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5])


class ShapeRecordingEDSR(EDSR):
    calls: list[tuple[int, int]] = []

    def forward(self, x):
        ShapeRecordingEDSR.calls.append(tuple(x.shape[-2:]))
        return super().forward(x)


def test_each_step_uses_one_scale_from_the_pyramid(hr_images, tmp_path):
    if "edsr_shape_probe" not in SRNETS:
        SRNETS.register("edsr_shape_probe", SRNetSpec("edsr_shape_probe", ShapeRecordingEDSR, scale=4,
                                                      defaults={"n_blocks": 1, "n_feats": 4}))
    ShapeRecordingEDSR.calls = []
    run(hr_images, tmp_path, arch="edsr_shape_probe", arch_kwargs={}, lam=0.0, fnet=None, iterations=30,
        checkpoint_every=100)
    calls = ShapeRecordingEDSR.calls
    assert len(calls) == 30
    assert set(calls) == {(7, 6), (14, 12), (28, 24)}  # 1/16, 1/8, 1/4 inputs, all drawn


def test_batch_sampler_covers_each_epoch_once():
    sampler = BatchSampler(n=10, batch_size=4, seed=1)
    stream = np.concatenate([sampler.indices(s) for s in range(5)])  # 20 = two epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])
    assert np.array_equal(BatchSampler(10, 4, 1).indices(3), sampler.indices(3))


def test_bad_inputs_are_explained(hr_images, tmp_path):
    with pytest.raises(ValueError, match="needs fnet"):
        run(hr_images, tmp_path, fnet=None)
    with pytest.raises(ValueError, match="divisible by 16"):
        run(hr_images[:, :100], tmp_path, lam=0.0, fnet=None)
    with pytest.raises(ValueError, match="uint8"):
        run(hr_images.astype(np.float32), tmp_path)


def test_precomputed_pyramid_matches_built_one(hr_images, tmp_path):
    from srlrfr.degradation import downsample
    levels = {f: InMemory(hr_images if f == 1 else downsample(hr_images, f, "cv2_bicubic")) for f in (1, 2, 4, 8, 16)}
    built = run(hr_images, tmp_path / "built", iterations=3, lam=0.0, fnet=None)
    given = run(PyramidData(levels), tmp_path / "given", iterations=3, lam=0.0, fnet=None)
    for va, vb in zip(load_srnet(built)[0].state_dict().values(), load_srnet(given)[0].state_dict().values()):
        assert torch.equal(va, vb)
    with pytest.raises(ValueError, match="lacks level 16"):
        PyramidData({f: levels[f] for f in (1, 2, 4, 8)})
    with pytest.raises(ValueError, match="level 4: expected uint8"):
        PyramidData({**levels, 4: levels[8]})


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_runs(hr_images, tmp_path, amp):
    out = run(hr_images, tmp_path, iterations=2, amp=amp)
    rows = (tmp_path / "train_log.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(np.isfinite(float(v)) for r in rows for v in r.split(",")[2:])
    model, info = load_srnet(out)
    assert info["meta"]["amp"] == amp
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def _stored(hr_images, tmp_path, status) -> tuple:
    """An aligned + degraded folder pair as the align and degrade steps write them."""
    import pandas as pd

    from srlrfr.steps.degrade import degrade
    from srlrfr.storage import write_npy
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    with write_npy(aligned / "images.npy", hr_images.shape) as w:
        w.write(hr_images)
    pd.DataFrame({"image_id": [f"{k:06d}.jpg" for k in range(len(hr_images))], "status": status,
                  "landmark_ok": [s == "ok" for s in status]}).to_csv(aligned / "faces.csv", index=False)
    degrade(aligned, [2, 4, 8, 16], "cv2_bicubic", tmp_path / "degraded")
    return aligned, tmp_path / "degraded"


def test_training_from_disk_equals_in_memory(hr_images, tmp_path):
    """The pyramid as the align and degrade steps store it (read by row) trains the same model."""
    aligned, degraded = _stored(hr_images, tmp_path, ["ok"] * len(hr_images))
    from_disk = run(PyramidData.open(aligned, degraded), tmp_path / "disk", iterations=3,
                    lam=0.0, fnet=None)
    in_memory = run(hr_images, tmp_path / "memory", iterations=3, lam=0.0, fnet=None)
    for va, vb in zip(load_srnet(from_disk)[0].state_dict().values(), load_srnet(in_memory)[0].state_dict().values()):
        assert torch.equal(va, vb)


def test_images_without_a_face_never_enter_a_batch(hr_images, tmp_path, monkeypatch):
    status = ["ok", "no_face", "ok", "ok", "unreadable", "not_listed"]
    aligned, degraded = _stored(hr_images, tmp_path, status)
    data = PyramidData.open(aligned, degraded)
    assert data.usable.tolist() == [0, 2, 3] and data.dropped == 3
    drawn = []
    gather = PyramidData.gather
    monkeypatch.setattr(PyramidData, "gather", lambda self, f, idx: drawn.append(np.array(idx)) or gather(self, f, idx))
    model = run(data, tmp_path / "run", iterations=12, lam=0.5)  # 36 draws, identity target gathered too
    rows = np.concatenate(drawn)
    assert set(rows.tolist()) == {0, 2, 3}  # every usable face drawn, no other
    assert load_srnet(model)[1]["meta"]["n_dropped"] == 3
    # the same faces in memory, selected by row, train the same model
    monkeypatch.setattr(PyramidData, "gather", gather)
    same = run(PyramidData.from_images(hr_images, "cv2_bicubic", usable=[0, 2, 3]), tmp_path / "mem", iterations=12,
               lam=0.5)
    for va, vb in zip(load_srnet(model)[0].state_dict().values(), load_srnet(same)[0].state_dict().values()):
        assert torch.equal(va, vb)
    with pytest.raises(ValueError, match="none of the 6 training crops is usable"):
        PyramidData.from_images(hr_images, "cv2_bicubic", usable=[])


def test_crops_of_damaged_images_are_never_trained_on(hr_images, tmp_path):
    """Rows whose source image is corrupt or unreadable (black placeholders) are left out of training:
    the model equals one trained on the usable crops alone."""
    import pandas as pd

    from srlrfr.steps.degrade import degrade
    from srlrfr.storage import write_npy
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    images = hr_images.copy()
    status = np.array(["ok"] * len(images), dtype=object)
    status[[1, 3]] = ["corrupt", "unreadable"]
    images[[1, 3]] = 0  # what align writes for them
    with write_npy(aligned / "images.npy", images.shape) as w:
        w.write(images)
    pd.DataFrame({"image_id": [f"i{k}" for k in range(len(images))], "status": status,
                  "landmark_ok": status == "ok"}).to_csv(aligned / "faces.csv", index=False)
    degrade(aligned, [2, 4, 8, 16], "cv2_bicubic", tmp_path / "degraded")
    data = PyramidData.open(aligned, tmp_path / "degraded")
    assert len(data.usable) == len(images) - 2 and data.dropped == 2
    from_disk = run(data, tmp_path / "disk", iterations=3, lam=0.0, fnet=None)
    usable = run(hr_images[status == "ok"], tmp_path / "memory", iterations=3, lam=0.0, fnet=None)
    for va, vb in zip(load_srnet(from_disk)[0].state_dict().values(), load_srnet(usable)[0].state_dict().values()):
        assert torch.equal(va, vb)


def test_batches_prepared_ahead_train_the_same_weights(hr_images, tmp_path):
    """Prefetching (a worker thread, batches drawn ahead) changes nothing: same weights, same log."""
    runs = [run(hr_images, tmp_path / f"prefetch{d}", iterations=5, prefetch=d) for d in (0, 1, 3)]
    logs = {(p.parent / "train_log.csv").read_text() for p in runs}
    assert len(logs) == 1
    ref = load_srnet(runs[0])[0].state_dict()
    for other in runs[1:]:
        for k, v in load_srnet(other)[0].state_dict().items():
            assert torch.equal(v, ref[k]), k


def test_training_reports_its_data_wait(hr_images, tmp_path):
    stats: dict = {}
    run(hr_images, tmp_path, iterations=3, lam=0.0, fnet=None, stats=stats)
    assert stats["steps"] == 3 and 0 <= stats["data_wait_seconds"] <= stats["seconds"]


def test_cached_hr_features_equal_the_live_ones(hr_images):
    """FNet(HR) computed once per crop and flip is the feature the live step computes for that draw."""
    from srlrfr.models.srnet import to_tensor
    from srlrfr.training.hr_features import hr_feature_table, lookup
    fnet = random_tiny_sphereface20().freeze()
    data = PyramidData.from_images(hr_images, "cv2_bicubic", usable=[0, 2, 3, 4, 5])
    table = hr_feature_table(fnet, data, torch.device("cpu"), batch_size=2, progress=False)
    assert table.shape == (6, 2, 16) and not table[1].any()  # a row never drawn is never computed
    idx, flip = np.array([3, 0, 5, 3]), np.array([True, False, False, False])
    rows = data.gather(1, idx)
    with torch.no_grad():  # the live step: flip the uint8 rows, then the FNet on the whole batch
        live = fnet(to_tensor(np.where(flip[:, None, None, None], rows[:, :, ::-1], rows)))
    torch.testing.assert_close(lookup(table, idx, flip), live, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(lookup(table, idx, ~flip), live, rtol=1e-3)  # the flip is not ignored


def test_cached_hr_features_train_as_the_live_step(hr_images, tmp_path):
    """With and without the cache, the same draws give the same losses (to float rounding)."""
    logs = {}
    for cache in (True, False):
        run(hr_images, tmp_path / str(cache), iterations=6, lam=0.5, cache_hr_features=cache)
        logs[cache] = np.loadtxt(tmp_path / str(cache) / "train_log.csv", delimiter=",", skiprows=1,
                                 usecols=range(2, 5))
    np.testing.assert_allclose(logs[True], logs[False], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lr, kwargs, log_every, step", [
    (1e30, TINY, 1, "at step 2"),  # the first update throws the weights to ~1e30: the next loss overflows
    (1e-4, {**TINY, "res_scale": float("nan")}, 1, "at step 1"),
    (1e-4, {**TINY, "res_scale": float("nan")}, 4, "at step 1"),  # found at step 4, named as step 1
])
def test_diverging_training_stops_without_a_model(hr_images, tmp_path, lr, kwargs, log_every, step):
    from srlrfr.training.loop import TrainingDiverged
    seen = []
    with pytest.raises(TrainingDiverged, match=rf"diverged {step}: the loss is NaN or infinite") as err:
        run(hr_images, tmp_path, lam=0.0, fnet=None, lr=lr, arch_kwargs=kwargs, log_every=log_every,
            checkpoint_every=4, step_callback=lambda s, losses: seen.append(s) if log_every > 1 else None)
    assert "train.lr" in str(err.value) and "train.amp" in str(err.value) and "res_scale" in str(err.value)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "checkpoint.pt").exists()
    if log_every > 1:
        assert seen == [1, 2, 3]  # stopped at the first step that syncs, before its checkpoint


def test_non_finite_weights_after_the_last_step_are_caught(hr_images, tmp_path, monkeypatch):
    """The last update's damage shows in no loss: the weights are checked before model.pt is written."""
    from srlrfr.training.loop import TrainingDiverged

    class OverflowingAdam(torch.optim.Adam):
        def step(self, closure=None):
            out = super().step(closure)
            self.done = getattr(self, "done", 0) + 1
            if self.done == 2:
                with torch.no_grad():
                    self.param_groups[0]["params"][0].fill_(float("inf"))
            return out
    monkeypatch.setattr(torch.optim, "Adam", OverflowingAdam)
    with pytest.raises(TrainingDiverged, match=r"diverged by step 2: the SRNet's weights are NaN or infinite"):
        run(hr_images, tmp_path, lam=0.0, fnet=None, iterations=2, checkpoint_every=1)
    assert not (tmp_path / "model.pt").exists()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 1  # the last finite one


def test_trainer_step_is_the_paper_loss_written_out(hr_images, tmp_path):
    """The registered losses (l1, cosine) and the step give, bit for bit on the CPU, the losses and Adam
    updates of the formula loss = L1(SR, target) + lam * mean(1 - cos(FNet(up(SR)), FNet(HR))) computed
    here by hand on a copy of the SRNet, for the first steps of a run."""
    import copy

    import torch.nn.functional as F

    from srlrfr.training.batches import to_device
    from srlrfr.training.loop import RunSpec, Trainer
    fnet = random_tiny_sphereface20()
    data = PyramidData.from_images(hr_images, "cv2_bicubic")
    opts = TrainOptions(batch_size=3, iterations=4, seed=3, lr=1e-3)
    trainer = Trainer(RunSpec(data, "edsr", dict(TINY), fnet, 0.5, "cv2_bicubic"), opts, tmp_path,
                      RunControl(device="cpu", progress=False))
    ref = copy.deepcopy(trainer.model)
    ref_adam = torch.optim.Adam(ref.parameters(), lr=opts.lr, betas=opts.betas)
    stream = trainer.data()
    try:
        for _ in range(opts.iterations):
            _, host = stream.next()
            out = trainer.step(host)
            batch = to_device(host, torch.device("cpu"))
            sr = ref(batch["input"])
            pixel = F.l1_loss(sr.float(), batch["target"])
            up = sr.float()
            if tuple(up.shape[-2:]) != (112, 96):
                up = F.interpolate(up, size=(112, 96), mode="bilinear", align_corners=False)
            ident = (1.0 - F.cosine_similarity(fnet(up).float(), batch["hr_features"].float(), dim=1)).mean()
            total = pixel + 0.5 * ident
            ref_adam.zero_grad(set_to_none=True)
            total.backward()
            ref_adam.step()
            for name, ours, theirs in (("pixel", out["pixel"], pixel), ("identity", out["identity"], ident),
                                       ("total", out["total"], total)):
                assert torch.equal(ours, theirs), name
    finally:
        stream.close()
    for (name, a), b in zip(trainer.model.named_parameters(), ref.parameters()):
        assert torch.equal(a, b), name


def test_losses_are_chosen_by_registered_name(hr_images, tmp_path):
    from srlrfr import config
    cfg = config.validate({})
    assert TrainOptions.from_params(cfg["train"]).losses == {"pixel": "l1", "identity": "cosine"}
    with pytest.raises(config.ConfigError, match="train.losses.identity"):
        config.validate({"train": {"losses": {"identity": "l1"}}})
    with pytest.raises(ValueError, match="train.losses.identity: loss 'l1' is a pixel loss"):
        run(hr_images, tmp_path, iterations=1, losses={"identity": "l1"})
    with pytest.raises(ValueError, match="train.losses.pixel: unknown training loss 'l3'"):
        run(hr_images, tmp_path, iterations=1, losses={"pixel": "l3"})
    with pytest.raises(ValueError, match="train.losses: unknown term 'perceptual'"):
        run(hr_images, tmp_path, iterations=1, losses={"perceptual": "l1"})
    model = run(hr_images, tmp_path / "ok", iterations=1)
    assert load_srnet(model)[1]["meta"]["losses"] == {"pixel": "l1", "identity": "cosine"}
    # the paper's losses leave the run config as it was before train.losses: older checkpoints resume
    assert "losses" not in torch.load(tmp_path / "ok" / "checkpoint.pt", weights_only=True)["config"]


def test_cpu_training_skips_the_nan_fill_and_restores_the_callers_settings(hr_images, tmp_path):
    """Deterministic algorithms without the NaN fill of fresh memory (8% of a step) while training;
    the caller's settings afterwards. Runs stay bit-identical: the resume test above."""
    seen = []

    def look(step, losses):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory))

    before = (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory)
    run(hr_images, tmp_path, iterations=2, step_callback=look)
    assert seen == [(True, False)] * 2
    assert (torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory) \
        == before


def test_skipping_the_nan_fill_changes_no_weight(hr_images, tmp_path, monkeypatch):
    """The fill only shows kernels that read unwritten memory: with it on, the same weights bit for bit."""
    import contextlib

    from srlrfr.training import loop

    without = run(hr_images, tmp_path / "without")

    @contextlib.contextmanager
    def with_fill(dev):
        was = torch.utils.deterministic.fill_uninitialized_memory
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = True
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(False)
            torch.utils.deterministic.fill_uninitialized_memory = was

    monkeypatch.setattr(loop, "deterministic_cpu", with_fill)
    filled = run(hr_images, tmp_path / "filled")
    a, _ = load_srnet(without)
    b, _ = load_srnet(filled)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
