"""The pipeline's steps, one list in pipeline order: names and flags only, no step's code.

Kept out of srlrfr.steps (which re-exports it) so that the layers below the
steps (srlrfr.resources, srlrfr.config) can read it without importing upward
(srlrfr.layers).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One pipeline step: ``srlrfr/steps/<name>.py`` and ``workflow/rules/<name>.smk``.

    benchmarked: the report times its jobs (the .smk then defines ``<name>_benchmarks()``, the
        benchmark: files of its jobs; workflow/rules/common.smk:step_benchmarks gathers them).
    dvc: DVC versions its outputs as a stage of dvc.yaml (srlrfr.dvcsync).
    device: the params key of the device it runs a network on: it may ask for a GPU
        (srlrfr.resources.gpus).
    """
    name: str
    benchmarked: bool = True
    dvc: bool = True
    device: str | None = None


# The one list of steps, in pipeline order: the Snakefile includes their rules, the CLI lists
# them, and the resources, the report's benchmarks and dvc.yaml's stages follow from it.
PIPELINE = (
    Step("ingest"),
    Step("landmarks", device="align.device"),
    Step("align"),
    Step("degrade"),
    Step("fnet_weights"),
    Step("import_authors", dvc=False),  # fixed external files verified by blob id, imported on demand
    Step("train", device="train.device"),
    Step("features", device="evaluate.device"),
    Step("evaluate", device="evaluate.device"),
    Step("matrix"),
    Step("aggregate"),
    Step("report", benchmarked=False),  # reads the others' benchmarks; its own would change its input
)
ORDER = tuple(s.name for s in PIPELINE)
BENCHMARKED = tuple(s.name for s in PIPELINE if s.benchmarked)
