#!/usr/bin/env bash
# Run by Snakemake inside the rules' conda environment, from the repository root.
set -euo pipefail
python -m pip install -e .
