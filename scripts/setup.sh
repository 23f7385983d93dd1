#!/usr/bin/env bash
# Create .venv (if missing) and install Bastion with the given extras. Idempotent.
#   scripts/setup.sh            -> core only
#   scripts/setup.sh dev,embed  -> with extras
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [[ ",$extras," == *",embed,"* ]]; then
  # the CPU wheel of torch first (a plain `torch` would pull a multi-GB CUDA build)
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install -q -e ".[${extras}]"
else
  .venv/bin/python -m pip install -q -e .
fi
