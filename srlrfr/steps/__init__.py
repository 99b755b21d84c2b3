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

from ..pipeline import BENCHMARKED, ORDER, PIPELINE, Step  # noqa: F401  (the one list; lives below, srlrfr.layers)


def __getattr__(name: str):
    """``STEPS`` (name -> module), imported on first use: importing one step (say
    srlrfr.steps.evaluate on a bare GPU machine, benchmarks/gpu_check.py) does not
    import every other step's libraries (the report's matplotlib)."""
    if name == "STEPS":
        modules = [importlib.import_module(f".{n}", __name__) for n in ORDER]
        globals()["STEPS"] = steps = {m.NAME: m for m in modules}
        return steps
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
