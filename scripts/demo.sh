#!/usr/bin/env bash
# The main job on a fresh machine: install (with the `report` extra for the report's plots), then `bastion demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh report
exec .venv/bin/bastion demo "$@"
