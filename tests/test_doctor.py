"""srlrfr doctor: the real machine (no GPU here), a fake device list for the GPU
branch, local sources, downloads, the network (local servers and the reserved
.invalid domain only, never the internet), the disk estimate, the CLI and the
Snakefile preflight."""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from srlrfr import cli, config
from srlrfr.data import sources
from srlrfr.doctor import FAIL, INFO, OK, WARN, PreflightError, Providers, failures, preflight, render, run_checks
from srlrfr.doctor.disk import check_disk, plan_outputs
from srlrfr.doctor.inputs import (
    Download,
    Plan,
    celeba_selection,
    check_celeba,
    check_landmarks,
    check_lfw,
    check_weights,
    mtcnn_weights_dir,
)
from srlrfr.doctor.machine import (
    Driver,
    Gpu,
    TorchInfo,
    check_devices,
    check_torch,
    nvidia_driver,
    probe_torch,
    torch_install_command,
)
from srlrfr.doctor.network import Reach, check_network, probe_url

A100 = Gpu(0, "NVIDIA A100-SXM4-80GB", 80 * 2**30, (8, 0), bf16=True)
V100 = Gpu(1, "Tesla V100-SXM2-32GB", 32 * 2**30, (7, 0), bf16=False)
TWO_GPUS = TorchInfo("2.14.1", "13.0", True, (A100, V100))
NO_GPU = TorchInfo("2.14.1", "13.0", False)
BIG_DISK = lambda path: SimpleNamespace(total=10**13, used=0, free=10**13)  # noqa: E731
CPU_ONLY = Providers(torch_info=NO_GPU, driver=None, usage=BIG_DISK)
TWO_GPUS_NO_DRIVER = Providers(torch_info=TWO_GPUS, driver=None, usage=BIG_DISK)


def by_name(checks, name):
    return [c for c in checks if c.name == name]


# ------------------------------------------------------------------ this machine

def test_this_machine_torch_and_gpu_as_torch_reports_them():
    info = probe_torch()
    assert info.version == torch.__version__ and info.cuda_build == torch.version.cuda
    assert info.cuda_available == torch.cuda.is_available()
    assert len(info.gpus) == (torch.cuda.device_count() if info.cuda_available else 0)
    text = render(check_torch(info, nvidia_driver()))
    assert torch.__version__ in text
    if not info.cuda_available:  # the CI and build machines: no GPU, and the report says so
        assert "no GPU" in text
        assert shutil.which("nvidia-smi") or nvidia_driver() is None


# ------------------------------------------------------------------ GPU branch (fake device list)

def test_each_visible_gpu_is_listed_with_memory_and_bf16():
    text = render(check_torch(TWO_GPUS, Driver("580.65.06", (13, 0))))
    assert "cuda:0" in text and "NVIDIA A100-SXM4-80GB, 80.0 GiB, compute capability 8.0, bf16 yes" in text
    assert "cuda:1" in text and "Tesla V100-SXM2-32GB, 32.0 GiB" in text and "bf16 no" in text
    assert "NVIDIA driver 580.65.06" in text


def test_device_keys_are_checked_against_the_gpus_torch_sees():
    cfg = config.validate({"align": {"device": "auto"}, "train": {"device": "cuda:1", "amp": "bf16"},
                           "evaluate": {"device": "cuda:2"}})
    checks = check_devices(cfg, TWO_GPUS)
    align = by_name(checks, "align.device")[0]
    assert align.status == OK and "cuda:0 (NVIDIA A100" in align.detail
    amp = by_name(checks, "train.amp")[0]
    assert amp.status == FAIL and "Tesla V100" in amp.detail and "fp16" in amp.fix
    ev = by_name(checks, "evaluate.device")[0]
    assert ev.status == FAIL and "sees 2 GPU(s)" in ev.detail and "cuda:0..cuda:1" in ev.fix
    ok = check_devices(config.validate({"train": {"device": "cuda:0", "amp": "bf16"}}), TWO_GPUS)
    assert not failures(ok)


def test_driver_older_than_the_torch_build_gets_the_matching_wheel_command():
    info = TorchInfo("2.14.1+cu130", "13.0", False, (), "The NVIDIA driver on your system is too old")
    driver = Driver("535.104.05", (12, 2))
    gpu = check_torch(info, driver)[-1]
    assert gpu.status == WARN and "too old" in gpu.detail and "535.104.05" in gpu.detail
    assert "torch==2.14.1+cu126 " in gpu.fix and "--index-url https://download.pytorch.org/whl/cu126" in gpu.fix
    dev = by_name(check_devices(config.validate({"train": {"device": "cuda"}}), info, driver), "train.device")[0]
    assert dev.status == FAIL and "whl/cu126" in dev.fix
    # auto on a machine without a GPU is a warning, not a failure
    assert not failures(check_devices(config.validate({}), NO_GPU))


@pytest.mark.parametrize("cuda, variant", [((13, 1), "cu130"), ((12, 8), "cu128"), ((12, 4), "cu126"),
                                           ((11, 8), "cu118")])
def test_torch_variant_per_driver_generation(cuda, variant):
    cmd = torch_install_command("2.14.1+cu130", Driver("x", cuda))
    assert cmd.endswith(f"--index-url https://download.pytorch.org/whl/{variant}")
    assert ("torch==2.7.1+cu118 torchvision==0.22.1+cu118" in cmd) == (variant == "cu118")
    assert (f"torch==2.14.1+{variant}" in cmd) == (variant != "cu118")
    assert torch_install_command("2.14.1", None).endswith("whl/cpu")
    assert "no torch build" in torch_install_command("2.14.1", Driver("x", (10, 2)))


# ------------------------------------------------------------------ data and weights

def make_lfw(root: Path) -> Path:
    for name, n in (("Ann_Lee", 2), ("Bo_Ma", 1)):
        (root / "lfw" / name).mkdir(parents=True)
        for i in range(1, n + 1):
            (root / "lfw" / name / f"{name}_{i:04d}.jpg").write_bytes(b"jpeg")
    (root / "pairs.txt").write_text("1\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Ma\t1\n")
    return root


def make_celeba(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    lines = [f"{i:06d}.jpg {ident}" for i, ident in enumerate([3, 1, 1, 1, 2, 3, 3, 3, 3], 1)]
    (root / "identity_CelebA.txt").write_text("\n".join(lines) + "\n")
    return root


def local_params(tmp_path: Path, **over) -> dict:
    make_lfw(tmp_path / "lfwsrc"), make_celeba(tmp_path / "celebasrc")
    doc = {"fnet": "dlib_resnet34",
           "data": {"lfw": {"images": str(tmp_path / "lfwsrc"), "pairs": str(tmp_path / "lfwsrc/pairs.txt")},
                    "celeba": {"source": str(tmp_path / "celebasrc"), "max_identities": 2,
                               "images_per_identity": 2},
                    "cache": str(tmp_path / "cache")},
           "align": {"device": "cpu"}, "train": {"device": "cpu"}, "evaluate": {"device": "cpu"}}
    return config.validate(config.deep_merge(doc, over))


def test_local_sources_are_found_and_counted(tmp_path):
    cfg, plan = local_params(tmp_path), Plan()
    checks = check_lfw(cfg, tmp_path, plan) + check_celeba(cfg, tmp_path, plan) + check_weights(cfg, tmp_path, plan)
    assert [c.status for c in checks] == [OK] * len(checks), render(checks)
    assert "3 LFW images" in checks[0].detail
    assert plan.lfw_images == 3  # Ann_Lee 1, 2 and Bo_Ma 1
    assert plan.celeba_images == 3 and plan.downloads == []  # ids 1 and 2, at most 2 each: 2 + 1


def test_mtcnn_weights_are_looked_up_where_the_detector_reads_them():
    from srlrfr.face.mtcnn import weights_dir
    assert mtcnn_weights_dir() == weights_dir()


def test_pairs_naming_images_the_folder_lacks_fail(tmp_path):
    cfg, plan = local_params(tmp_path), Plan()
    (tmp_path / "lfwsrc/lfw/Bo_Ma/Bo_Ma_0001.jpg").unlink()
    bad = failures(check_lfw(cfg, tmp_path, plan))
    assert [c.name for c in bad] == ["data.lfw.pairs"] and "1 of the 3 images" in bad[0].detail
    assert "Bo_Ma/Bo_Ma_0001.jpg" in bad[0].detail


def test_celeba_selection_follows_the_ingest_rules(tmp_path):
    ident = make_celeba(tmp_path) / "identity_CelebA.txt"  # id 1: 3 images, id 2: 1, id 3: 5
    assert celeba_selection(ident, None, None) == 9
    assert celeba_selection(ident, 2, None) == 4
    assert celeba_selection(ident, None, 2) == 5
    assert celeba_selection(ident, 1, 1) == 1


def test_missing_sources_fail_with_the_key_and_the_fix(tmp_path):
    cfg = local_params(tmp_path, data={"lfw": {"images": str(tmp_path / "nope")},
                                       "celeba": {"source": str(tmp_path / "lfwsrc")}},
                       fnet="sphereface20", fnets={"sphereface20": {"weights": str(tmp_path / "w")}})
    plan = Plan()
    checks = check_lfw(cfg, tmp_path, plan) + check_celeba(cfg, tmp_path, plan) + check_weights(cfg, tmp_path, plan)
    bad = {c.name: c for c in failures(checks)}
    assert set(bad) == {"data.lfw.images", "data.celeba.source", "fnets.sphereface20.weights"}
    assert "does not exist" in bad["data.lfw.images"].detail and "data.lfw.images" in bad["data.lfw.images"].fix
    assert "identity_CelebA.txt" in bad["data.celeba.source"].detail
    assert "SR_LRFR" in bad["fnets.sphereface20.weights"].fix


def test_downloads_are_listed_and_a_cached_file_is_not_fetched_again(tmp_path):
    cfg = config.validate({"data": {"cache": str(tmp_path / "cache")},
                           "evaluate": {"authors_checkpoints": ["edsr_baseline"]}})
    (tmp_path / "cache/lfw").mkdir(parents=True)
    (tmp_path / "cache/lfw/lfw.tgz").write_bytes(b"x")
    (tmp_path / "cache/celeba").mkdir(parents=True)
    (tmp_path / "cache/celeba/img_align_celeba.zip.part").write_bytes(b"y" * 1000)
    plan = Plan()
    checks = check_lfw(cfg, tmp_path, plan) + check_celeba(cfg, tmp_path, plan) + check_weights(cfg, tmp_path, plan)
    assert "already downloaded" in by_name(checks, "data.lfw.images")[0].detail
    assert [d.filename for d in plan.downloads] == ["pairs.txt", "identity_CelebA.txt", "img_align_celeba.zip",
                                                    "sface.pth", "edsr_baseline.7z.001", "edsr_baseline.7z.002"]
    zip_ = next(d for d in plan.downloads if d.filename == "img_align_celeba.zip")
    assert "resuming" in by_name(checks, "data.celeba.source")[1].detail and zip_.size == 1_443_490_838 - 1000
    sface = next(d for d in plan.downloads if d.filename == "sface.pth")
    assert sface.urls == sources.SFACE_PTH.urls and sface.dest == tmp_path / "cache/authors/sface.pth"
    assert all(c.status == INFO for c in checks if "will download" in c.detail)


# ------------------------------------------------------------------ network

class _Head(BaseHTTPRequestHandler):
    def do_HEAD(self):
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")  # must not be followed
        else:
            self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Head)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_url_tells_answers_from_no_network(server):
    assert probe_url(server + "/file", 2) == Reach(True, "HTTP 404")  # any HTTP answer: the host is there
    assert probe_url(server + "/moved", 2) == Reach(True, "HTTP 302")  # redirect not followed
    assert probe_url(f"http://127.0.0.1:{closed_port()}/x", 2) == Reach(False, "connection refused")
    assert probe_url("http://srlrfr-doctor-test.invalid/x", 2) == Reach(False, "DNS lookup failed")  # RFC 6761


def dl(key, *urls):
    return Download(key, urls[0].rsplit("/", 1)[-1], urls, Path("cache") / "f", 10, hint=f"set {key} to a copy")


def test_no_network_is_said_plainly(tmp_path):
    downloads = [dl("data.lfw.images", f"http://127.0.0.1:{closed_port()}/lfw.tgz",
                    "http://srlrfr-doctor-test.invalid/lfw.tgz")]
    checks = check_network(downloads, probe_url, timeout=2)
    assert checks[0].status == FAIL and checks[0].detail.startswith("no network:")
    assert "connection refused" in checks[0].detail and "DNS lookup failed" in checks[0].detail
    assert checks[1].name == "data.lfw.images" and checks[1].status == FAIL
    assert checks[1].fix == "set data.lfw.images to a copy"


def test_a_mirror_that_answers_is_enough_and_hung_hosts_cost_only_the_timeout(server):
    def probe(url, timeout):
        if "hang" in url:
            time.sleep(30)
        return probe_url(url, timeout)

    downloads = [dl("data.lfw.images", "http://hang.example/lfw.tgz", server + "/lfw.tgz"),
                 dl("data.celeba.source", "http://hang.example/celeba.zip")]
    start = time.monotonic()
    checks = check_network(downloads, probe, timeout=0.5)
    assert time.monotonic() - start < 5
    assert checks[0].status == OK and "hang.example: no answer within 0.5 s" in checks[0].detail
    assert by_name(checks, "data.lfw.images")[0].status == OK
    assert by_name(checks, "data.celeba.source")[0].status == FAIL
    assert check_network([], probe)[0].detail.startswith("nothing to download")


# ------------------------------------------------------------------ disk

def test_disk_estimate_counts_crops_pyramid_and_models_and_subtracts_what_exists(tmp_path):
    cfg = config.validate({"fnet": "dlib_resnet34", "lambdas": [0.0], "lambda": 0.0,
                           "train": {"srnet": {"type": "edsr", "n_blocks": 2, "n_feats": 8}},
                           "degrade": {"factors": [16, 8, 4]}})
    plan = Plan(lfw_images=10, celeba_images=20)
    items = {i.what: i for i in plan_outputs(cfg, tmp_path, plan)}
    crop = 160 * 160 * 3
    assert items["aligned LFW crops"].size == 10 * crop
    assert [items[f"lfw x{f} level"].size for f in (16, 8, 4)] == [10 * crop // f**2 for f in (16, 8, 4)]
    # the full-size level is the aligned crops, stored once
    assert "celeba x1 level" not in items
    assert [items[f"celeba x{f} level"].size for f in (2, 4, 8, 16)] == [20 * crop // f**2 for f in (2, 4, 8, 16)]
    from srlrfr.models.srnets.edsr import EDSR
    sr = sum(t.numel() * 4 for t in EDSR(n_blocks=2, n_feats=8).state_dict().values())
    assert items["SRNet edsr lambda=0"].size == sr and items["SRNet edsr lambda=0 checkpoint"].size == 3 * sr
    assert items["SRNet edsr lambda=0"].path == tmp_path / "models/srnets/dlib_resnet34/edsr_lambda0/model.pt"
    done = tmp_path / "data/aligned/lfw_dlib_160x160/images.npy"
    done.parent.mkdir(parents=True)
    done.write_bytes(b"0" * 1000)
    again = {i.what: i for i in plan_outputs(cfg, tmp_path, plan)}
    assert again["aligned LFW crops"].size == 10 * crop - 1000


def test_disk_fails_when_free_space_is_short(tmp_path):
    cfg = config.validate({"fnet": "dlib_resnet34"})
    items = plan_outputs(cfg, tmp_path, Plan(lfw_images=100, celeba_images=100))
    need = sum(i.size for i in items)
    short = check_disk(items, lambda p: SimpleNamespace(free=need - 1))
    assert short[0].status == FAIL and "set data.cache to a larger disk" in short[0].fix
    assert check_disk(items, lambda p: SimpleNamespace(free=need))[0].status == OK


# ------------------------------------------------------------------ all together: CLI and preflight

def test_cli_doctor_passes_on_local_sources_and_fails_naming_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = local_params(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text(config_yaml(cfg))
    assert cli.main(["doctor", "--params", str(good)]) == 0
    out = capsys.readouterr().out
    assert "No problems found" in out and "nothing to download" in out and "python" in out and "snakemake" in out
    bad = tmp_path / "bad.yaml"
    cfg["data"]["lfw"]["pairs"] = str(tmp_path / "missing_pairs.txt")
    bad.write_text(config_yaml(cfg))
    with pytest.raises(SystemExit) as exc:
        cli.main(["doctor", "--quick", "--params", str(bad)])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL  data.lfw.pairs" in out and "fix: Set data.lfw.pairs" in out and "1 problem(s)" in out


def config_yaml(cfg: dict) -> str:
    import yaml
    return yaml.safe_dump(cfg)


def test_authors_landmark_files_are_planned_downloads(tmp_path):
    cfg, plan = local_params(tmp_path, align={"landmarks": {"lfw": "authors"}}), Plan()
    checks = check_landmarks(cfg, tmp_path, ("lfw",), plan)
    assert [(c.name, c.status) for c in checks] == [("align.landmarks.lfw", INFO)]
    assert [d.dest.name for d in plan.downloads] == ["LFW.csv"]
    assert plan.downloads[0].dest.parent == tmp_path / "cache" / "authors"


def test_preflight_prints_only_problems_and_stops_the_run(tmp_path):
    cfg = local_params(tmp_path, train={"device": "cuda", "amp": "bf16"})
    stream = io.StringIO()
    with pytest.raises(PreflightError, match="train.device"):
        preflight(cfg, root=tmp_path, providers=CPU_ONLY, stream=stream)
    text = stream.getvalue()
    assert "FAIL  train.device" in text and "cuda requested but torch sees no GPU" in text
    assert "  ok  " not in text
    checks = preflight(config.deep_merge(cfg, {"train": {"device": "cuda:0"}}), root=tmp_path,
                       providers=TWO_GPUS_NO_DRIVER, stream=io.StringIO())
    assert not failures(checks)


def test_snakefile_onstart_preflight_stops_before_any_job(tmp_path):
    """The lines of workflow/Snakefile: a failing check ends snakemake in seconds, and only
    a check that a scheduled job needs (a bad LFW source does not stop a job that does not read it)."""
    (tmp_path / "Snakefile").write_text(
        "from srlrfr import config as params\n"
        "config.update(params.validate(config))\n\n"
        "onstart:\n"
        "    from srlrfr.doctor import preflight, scheduled\n"
        "    preflight(config, jobs=scheduled(workflow.dag.needrun_jobs()))\n\n"
        "rule ingest:\n"
        "    output: 'index_{dataset}.txt'\n"
        "    shell: 'touch {output}'\n\n"
        "rule other:\n"
        "    output: 'other.txt'\n"
        "    shell: 'touch {output}'\n")
    (tmp_path / "p.yaml").write_text(f"data: {{lfw: {{images: {tmp_path}/no_lfw}}}}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}

    def snakemake(target):
        return subprocess.run([sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", "p.yaml"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    run = snakemake("index_lfw.txt")
    assert run.returncode != 0 and not (tmp_path / "index_lfw.txt").exists()
    assert "FAIL  data.lfw.images" in run.stderr and "PreflightError" in run.stderr
    run = snakemake("other.txt")
    assert run.returncode == 0 and (tmp_path / "other.txt").exists(), run.stderr
    assert "data.lfw.images" not in run.stderr


def test_scheduled_jobs_limit_the_input_checks(tmp_path):
    cfg = local_params(tmp_path)
    cfg = config.deep_merge(cfg, {"data": {"lfw": {"images": str(tmp_path / "no_lfw")}}})
    every = run_checks(cfg, root=tmp_path, network=False, providers=CPU_ONLY)
    assert "data.lfw.images" in {c.name for c in failures(every)}
    some = run_checks(cfg, root=tmp_path, network=False, providers=CPU_ONLY,
                      jobs={"fnet_weights", "train"})
    assert not {c.name for c in some} & {"data.lfw.images", "data.lfw.pairs", "data.celeba.source"}
    assert any(c.name.startswith("fnets.") for c in some)
    assert not any(c.name == "evaluate.authors_weights" for c in some)
