#!/usr/bin/env bash
# Network benchmark: starts `soulbox serve --pool 0` on a fresh data
# directory and runs bench/netbench (egress create cost, port-proxy
# throughput against direct access inside the sandbox).
# Usage (as root, from the repository): bench/net.sh [RUNS] [MB]
# Writes bench/results/net.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100}
MB=${2:-256}
SOULBOX=${SOULBOX:-$PWD/bin/soulbox}
OUT=bench/results
PORT=${PORT:-18091}
[ -x "$SOULBOX" ] || { echo "bench: build first (make build)" >&2; exit 1; }
mkdir -p "$OUT"
DATA=$(mktemp -d /var/tmp/soulbox-netbench-XXXXXX)
go build -o "$DATA/netbench" ./bench/netbench
KEY=$("$SOULBOX" apikey create --data-dir "$DATA" 2>/dev/null | tail -1)
"$SOULBOX" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --pool 0 2>"$DATA/daemon.log" &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null; wait $DAEMON 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$DATA/netbench" -url "http://127.0.0.1:$PORT" -key "$KEY" -runs "$RUNS" -mb "$MB" | tee "$OUT/net.json"
