#!/usr/bin/env bash
# Runs every ```bash block of docs/integrate.md, in order, in one shell; fails on the first failing command.
# Needs Redis on 127.0.0.1:6379 and the datasets folder ($BASTION_DATA_DIR, default ../shared/data).
# `bastion` is the one on PATH, else this checkout's (python -m bastion.cli with src/ first on the path).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BASTION_DATA_DIR=${BASTION_DATA_DIR:-$ROOT/../shared/data}
PY=${PYTHON:-python3}
SCRIPT=$(mktemp)
BIN=$(mktemp -d)
trap 'rm -rf "$SCRIPT" "$BIN"' EXIT
if ! command -v bastion > /dev/null; then   # a real executable, so `kill $!` stops the server itself
  printf '#!/bin/sh\nPYTHONPATH="%s/src" exec "%s" -m bastion.cli "$@"\n' "$ROOT" "$PY" > "$BIN/bastion"
  chmod +x "$BIN/bastion"
  export PATH="$BIN:$PATH"
fi
{
  echo 'set -euo pipefail'
  echo 'cleanup() { kill ${SERVER:-} ${RECEIVER:-} ${BROKER:-} 2> /dev/null || true; }; trap cleanup EXIT'
  "$PY" - "$ROOT/docs/integrate.md" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
for i, block in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S)):
    print(f"echo '--- block {i + 1}'")
    print(block)
PYEOF
} > "$SCRIPT"
bash "$SCRIPT"
echo "docs/integrate.md: every bash block ran"
