#!/usr/bin/env bash
# The whole test suite on a fresh machine: install with every extra, make sure the local services and
# Chromium are there, run the quality gates and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/services.sh
export BASTION_MODELS_DIR="${BASTION_MODELS_DIR:-$(mktemp -d)}"
.venv/bin/ruff check src tests
.venv/bin/lint-imports
.venv/bin/mypy src/bastion/events src/bastion/state src/bastion/actions src/bastion/engine.py src/bastion/features
.venv/bin/bastion rules test rules/
.venv/bin/python -m pytest -q --doctest-modules src/bastion tests "$@"
