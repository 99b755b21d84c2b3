"""The package's layers, bottom to top: a module imports only from its own layer or below.

A function imports a module, not its file's top, only to defer one of
DEFERRED (slow to import, or optional), directly or through a srlrfr module
that imports it; a comment on that line or the one above says so.

Each entry names a module or a package (which holds its submodules); every
module of srlrfr falls under exactly one, and tests/test_layers.py walks every
import (function-local ones too) and fails on a cycle, on an import from a
lower layer up to a higher one, and on a module no entry covers.
"""
LAYERS = (
    # errors, params YAML and typed entries, the list of steps, atomic writes, locks, leases and devices
    ("base", ("srlrfr", "srlrfr.errors", "srlrfr.yamlio", "srlrfr.typed", "srlrfr.pipeline", "srlrfr.atomic",
              "srlrfr.cachelock", "srlrfr.faults", "srlrfr.damaged", "srlrfr.leases", "srlrfr.device", "srlrfr.runs",
              "srlrfr.layers")),
    # the registries, the specs that fill them and the libraries the steps call
    ("libraries", ("srlrfr.registry", "srlrfr.catalog", "srlrfr.geometry", "srlrfr.methods", "srlrfr.resources",
                   "srlrfr.storage", "srlrfr.data", "srlrfr.face", "srlrfr.degradation", "srlrfr.models",
                   "srlrfr.metrics", "srlrfr.training", "srlrfr.report")),
    # params validated against the registries; paths in params resolved through the schema
    ("config", ("srlrfr.config", "srlrfr.paths")),
    # one module per Snakemake rule
    ("steps", ("srlrfr.steps",)),
    # what a user runs: the command line, the preflight checks, dvc.yaml from the Snakefile, Snakemake
    # supervised for DVC, SLURM's accounting per rule, a failed job's own error line on the console,
    # outputs DVC restored adopted for Snakemake
    ("commands", ("srlrfr.cli", "srlrfr.__main__", "srlrfr.doctor", "srlrfr.dvcsync", "srlrfr.supervise",
                  "srlrfr.slurm_report", "srlrfr.failed_jobs", "srlrfr.restored")),
)

# Slow to import (torch alone takes seconds) or optional: imported inside the function that needs them,
# so `srlrfr --help`, the Snakefile and a step that never touches them stay quick and install-proof.
DEFERRED = frozenset({"torch", "torchvision", "cv2", "pandas", "matplotlib", "snakemake", "dvc", "scipy",
                      "jsonschema", "requests", "gdown", "py7zr", "multivolumefile", "PIL", "joblib"})
