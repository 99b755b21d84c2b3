"""The pipeline's steps: one module per Snakemake rule, named as the rule.

``workflow/rules/<name>.smk`` and ``srlrfr/steps/<name>.py`` read side by
side. Each module holds one function from files to files (callable from
Python), plus ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``main(args, cfg)``, from which ``srlrfr <name>`` is built (srlrfr.cli);
``OUTPUTS_TOGETHER = True`` makes the CLI commit a step's outputs together
(srlrfr.atomic.all_or_nothing).
Libraries live below: data, face, degradation, models, training, metrics,
report.
"""
import importlib
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


def __getattr__(name: str):
    """``STEPS`` (name -> module), imported on first use: importing one step (say
    srlrfr.steps.evaluate on a bare GPU machine, benchmarks/gpu_check.py) does not
    import every other step's libraries (the report's matplotlib)."""
    if name == "STEPS":
        modules = [importlib.import_module(f".{n}", __name__) for n in ORDER]
        globals()["STEPS"] = steps = {m.NAME: m for m in modules}
        return steps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
