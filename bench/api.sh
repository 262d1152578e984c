#!/usr/bin/env bash
# Daemon benchmark: starts `soulbox serve` on a fresh data directory and
# measures, through its HTTP API on loopback (bench/apibench):
#   create → first output of a command (p50, p95), `true` in an existing
#   sandbox (p50, p95), and memory per idle sandbox (MemAvailable).
# Usage (as root, from the repository): bench/api.sh [RUNS] [IDLE] [POOL]
# Writes bench/results/api.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-200}
IDLE=${2:-500}
POOL=${3:-4}
SOULBOX=${SOULBOX:-$PWD/bin/soulbox}
OUT=bench/results
PORT=${PORT:-18090}
[ -x "$SOULBOX" ] || { echo "bench: build first (make build)" >&2; exit 1; }
mkdir -p "$OUT"
DATA=$(mktemp -d /var/tmp/soulbox-apibench-XXXXXX)
go build -o "$DATA/apibench" ./bench/apibench
KEY=$("$SOULBOX" apikey create --data-dir "$DATA" 2>/dev/null | tail -1)
"$SOULBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --pool "$POOL" 2>"$DATA/daemon.log" &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
sleep 2 # let the warm pool fill
"$DATA/apibench" -url "http://127.0.0.1:$PORT" -key "$KEY" -runs "$RUNS" -idle "$IDLE" | tee "$OUT/api.json"
