#!/usr/bin/env bash
# The main job on a fresh machine: install, then `bastion demo` on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bastion demo "$@"
