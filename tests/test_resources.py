"""Rule resources (srlrfr/resources.py): GPUs only where a GPU can be used, overrides, sizes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srlrfr import config, resources


def cfg(**sections) -> dict:
    return config.validate(sections)


def test_gpu_only_for_network_rules_on_a_device_that_can_be_a_gpu():
    auto = cfg()
    assert {r for r in resources.RULES if resources.gpus(auto, r)} == set(resources.GPU_RULES)
    cpu = cfg(align={"device": "cpu"}, train={"device": "cpu"}, evaluate={"device": "cpu"})
    assert not any(resources.gpus(cpu, r) for r in resources.RULES)
    assert resources.job_resources(cpu, "train")["gpu"] == 0  # no --gpus for sbatch on a CPU partition
    assert resources.gpus(cfg(train={"gpus": 4}), "train") == 4


def test_params_override_every_resource_and_set_the_partition():
    c = cfg(resources={"train": {"partition": "gpu", "gpus": 2, "mem_mb": 9000, "runtime": 77}})
    assert resources.job_resources(c, "train") == {
        "gpu": 2, "mem_mb": 9000, "runtime": 77, "slurm_partition": "gpu"}
    assert "slurm_partition" not in resources.job_resources(c, "evaluate")  # the profile's default
    with pytest.raises(config.ConfigError, match="resources.trian"):
        cfg(resources={"trian": {}})


def test_runtime_grows_with_the_data_and_the_training_cost():
    c = cfg(align={"device": "cpu"})
    assert resources.runtime(c, "landmarks", 200_000) > resources.runtime(c, "landmarks", 2_000)
    smoke = cfg(train={"srnet": {"type": "edsr", "n_blocks": 2, "n_feats": 16}, "iterations": 300,
                       "batch_size": 8, "device": "cpu"})  # minutes on 2 cores
    paper_gpu, paper_cpu = cfg(), cfg(train={"device": "cpu"})
    assert resources.MIN_RUNTIME < resources.runtime(smoke, "train") < 60
    assert resources.runtime(paper_cpu, "train") > 50 * resources.runtime(paper_gpu, "train")
    assert 12 * 60 < resources.runtime(paper_gpu, "train") < 7 * 24 * 60  # about a day on one GPU


def test_memory_grows_only_where_it_was_measured_to():
    c = cfg()
    assert resources.mem_mb(c, "align", 200_000) == resources.mem_mb(c, "align", 2_000)
    assert resources.mem_mb(c, "landmarks", 202_599) > 30_000  # bench_memory's largest slope, docs/scale.md
    assert resources.mem_mb(cfg(resources={"landmarks": {"mem_mb": 8000}}), "landmarks", 202_599) == 8000


def test_image_count_from_storage_or_index_and_deferred_when_missing(tmp_path: Path):
    store = tmp_path / "aligned"
    store.mkdir()
    np.save(store / "images.npy", np.zeros((7, 4, 4, 3), np.uint8))
    assert resources.count_images(store) == 7
    index = tmp_path / "index"
    index.mkdir()
    (index / "images.csv").write_text("image_id,path,identity\n1,a,0\n2,b,0\n")
    assert resources.count_images(index) == 2
    with pytest.raises(FileNotFoundError) as err:  # Snakemake shows <TBD> until the input exists
        resources.count_images(tmp_path / "missing")
    assert err.value.filename == str(tmp_path / "missing")


def test_every_rule_is_known_and_the_cheap_ones_are_local(repo_root: Path):
    rules = {p.stem for p in (repo_root / "workflow" / "rules").glob("*.smk")} - {"common"}
    assert rules == set(resources.RULES)
    local = {p.stem for p in (repo_root / "workflow" / "rules").glob("*.smk") if "localrule: True" in p.read_text()}
    assert local == {"ingest", "fnet_weights", "import_authors", "matrix", "aggregate", "report"}
    assert not local & set(resources.GPU_RULES)


def test_the_training_estimate_asks_each_networks_registry_entry():
    """EDSR declares its body's cost; IMDN and dlib's ResNet declare none and are counted (torch's FLOP
    counter on the meta device), so a small SRNet is no longer priced as the paper's EDSR."""
    from srlrfr.catalog import load_all
    from srlrfr.models.base import counted_flops
    from srlrfr.registry import FNETS, SRNETS
    load_all()
    edsr, imdn = SRNETS.get("edsr"), SRNETS.get("imdn")
    assert edsr.forward_flops_per_pixel() == 2 * 32 * 9 * 256**2 * 2  # the defaults filled in
    small = {"n_blocks": 32, "n_feats": 64, "res_scale": 0.1}
    whole = counted_flops(edsr.build, (1, 3, 8, 8), tuple(sorted(small.items()))) / 64
    assert 1 < whole / edsr.forward_flops_per_pixel(**small) < 1.5  # the body; head, tail, upsampler are left out
    assert 1.5 < imdn.forward_flops_per_pixel(n_blocks=12) / imdn.forward_flops_per_pixel() < 2.5
    assert 1e9 < FNETS.get("dlib_resnet34").identity_flops() < FNETS.get("sphereface20").identity_flops() == 11e9
    paper, light = cfg(), cfg(train={"srnet": {"type": "imdn"}})
    assert resources.runtime(light, "train") < resources.runtime(paper, "train") / 5
