#!/usr/bin/env bash
# GPU check for srlrfr on a bare GPU machine: needs only python3 with torch,
# numpy, opencv, pandas, pyyaml and tqdm (no install, no network); srlrfr is
# imported from this checkout through PYTHONPATH. Prints training steps/s,
# images/s, data-wait share and TFLOP/s (EDSR 32x256 + identity loss through
# SphereFace-20, batch 64, fp32 and bf16), MTCNN images/s and evaluation
# pairs/s, in under five minutes on a current GPU (benchmarks/gpu_check.py).
#
#   bash benchmarks/gpu_check.sh               # the GPU figures
#   bash benchmarks/gpu_check.sh --smoke       # tiny sizes, CPU fallback: checks the script runs
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
missing=$("$PY" - <<'PY'
import importlib.util
print(" ".join(m for m in ("torch", "numpy", "cv2", "pandas", "yaml", "tqdm")
               if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
    echo "gpu_check: $PY lacks: $missing (install those packages, or set PYTHON=/path/to/python)" >&2
    exit 1
fi
"$PY" -c 'import torch; print("nvidia:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible to torch")'
cd "$REPO"
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" benchmarks/gpu_check.py "$@"
