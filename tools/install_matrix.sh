#!/usr/bin/env bash
# The install matrix beyond CI's own install (docs/testing.md): the unit tests
# under Python 3.13 installed from the ranges (newest releases allowed) and under
# Python 3.12 installed from the lock. Each installs torch afresh (minutes, GBs), so CI
# (.ci/run) runs only the lock check and the full suite on 3.11; run this before a
# release or after changing a range. Each step prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "=== ${SECONDS}s: $*"; }
# pythonX.Y from PATH, or pyenv's copy when the shim knows it but another version is global.
interpreter() {
    if "python$1" -c pass 2>/dev/null; then echo "python$1"; return; fi
    local v; v=$(pyenv versions --bare 2>/dev/null | grep -E "^$1\.[0-9]+$" | tail -1)
    [ -n "$v" ] && echo "$(pyenv root)/versions/$v/bin/python$1" || { echo "python$1 not found" >&2; return 1; }
}

rm -rf .venv-3.12 .venv-3.13
step "Python 3.13: install from the ranges (newest releases allowed), unit tests"
"$(interpreter 3.13)" -m venv .venv-3.13 && .venv-3.13/bin/pip install -q -e '.[test]'
.venv-3.13/bin/python -m pytest -q -m "not slow" -p no:cacheprovider
rm -rf .venv-3.13

step "Python 3.12: install from the lock, unit tests"
"$(interpreter 3.12)" -m venv .venv-3.12 && .venv-3.12/bin/pip install -q -r requirements.lock \
    && .venv-3.12/bin/pip install -q --no-deps -e .
.venv-3.12/bin/python -m pytest -q -m "not slow" -p no:cacheprovider
rm -rf .venv-3.12
step "done"
