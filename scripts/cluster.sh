#!/usr/bin/env bash
# A local deployment on this machine's Redis and PostgreSQL: a simulated stream, N stream workers, the API and
# reviewer UI (`bastion serve`) on the same Redis and PostgreSQL, and an admin user. Ctrl-C stops what it started.
#
#   scripts/cluster.sh [WORKERS] [USERS]        e.g. scripts/cluster.sh 2 1000
#
# Environment (defaults in brackets): REDIS [redis://127.0.0.1:6379/0], PG [postgresql://postgres@127.0.0.1:5432/test],
# PORT [8080], PREFIX [bastion-cluster-<random>:], PYTHON [.venv/bin/python, else /work/main/.venv/bin/python].
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS="${1:-2}"
USERS="${2:-1000}"
REDIS="${REDIS:-redis://127.0.0.1:6379/0}"
PG="${PG:-postgresql://postgres@127.0.0.1:5432/test}"
PORT="${PORT:-8080}"
TAG="$(date +%s)$$"
PREFIX="${PREFIX:-bastion-cluster-$TAG:}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=/work/main/.venv/bin/python; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
RUN="$(mktemp -d /tmp/bastion-cluster-XXXXXX)"
SRC="$REDIS?prefix=$PREFIX"
export BASTION_REVIEW_DB="$PG?schema=cluster_$TAG"
export BASTION_DB_PATH="$RUN/keys.db"
bastion() { "$PYTHON" -m bastion.cli "$@"; }

PIDS=()
stop() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped. Logs in $RUN; state under Redis prefix $PREFIX; review store $BASTION_REVIEW_DB"
}
trap stop EXIT INT TERM

echo "simulating $USERS users (one day) into $RUN/sim"
bastion sim --users "$USERS" --days 1 --seed 3 --out "$RUN/sim" >"$RUN/sim.log" 2>&1
bastion rules publish rules --to "$SRC" --by "$(id -un)" >"$RUN/publish.log"
PASSWORD="$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
bastion users add admin --role admin --password "$PASSWORD" >/dev/null

for ((i = 0; i < WORKERS; i++)); do
  bastion worker --source "$SRC" --index "$i" --workers "$WORKERS" --http-port $((9100 + i)) >"$RUN/w$i.log" 2>&1 &
  PIDS+=("$!")
done
BASTION_STATE="$SRC" BASTION_PORT="$PORT" bastion serve >"$RUN/serve.log" 2>&1 &
PIDS+=("$!")
bastion produce "$RUN/sim/events.jsonl" --to "$SRC" --partitions $((4 * WORKERS)) >"$RUN/produce.log" 2>&1 &
PIDS+=("$!")

cat <<INFO
Bastion cluster: $WORKERS workers over $SRC
  reviewer UI   http://127.0.0.1:$PORT/ui   (user admin, password $PASSWORD)
  API docs      http://127.0.0.1:$PORT/docs
  workers       http://127.0.0.1:9100/metrics ... :$((9099 + WORKERS))/metrics (/healthz, /readyz)
  review store  $BASTION_REVIEW_DB
  logs          $RUN
  new rules     $PYTHON -m bastion.cli rules publish DIR --to "$SRC" --by NAME
Ctrl-C stops everything this script started.
INFO
wait
