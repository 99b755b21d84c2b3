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
from . import (
               aggregate,
               align,
               degrade,
               evaluate,
               features,
               fnet_weights,
               import_authors,
               ingest,
               landmarks,
               matrix,
               report,
               train,
)

# Pipeline order (the CLI lists them so).
STEPS = {m.NAME: m for m in (ingest, landmarks, align, degrade, fnet_weights, import_authors, train, features,
                             evaluate, matrix, aggregate, report)}
