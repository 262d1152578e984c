#!/usr/bin/env bash
# Judge throughput: a C++ A+B solution compiled once and run against N test
# cases, and Python `print(sum(map(int, input().split())))` (run as the judge
# runs it, see below), sequentially and
# with 2 and 4 at once — through `soulbox judge` (full isolation, per-run
# limits), bubblewrap running the same program (no limits), and bare
# execution, all in this run on this machine.
# Usage (as root, from the repository): bench/judge.sh [CPP_CASES] [PY_CASES]
#
# go-judge (criyle/go-judge) side by side: set GOJUDGE_URL to a running
# go-judge and the table gets a "go-judge (cgroup limits)" row per language,
# driven by bench/gojudgebench (P requests in flight, each one case run;
# the C++ binary compiled once in go-judge and copied in by file id; the
# limits of the soulbox rows). Nothing here builds or installs go-judge:
# the Go module proxy does not serve it, so build it by hand from its
# source (outside this repository) and start it as root, e.g.
#   cd /tmp/go-judge-src && CGO_ENABLED=0 go build -o /tmp/go-judge/go-judge ./cmd/go-judge
#   cd /tmp/go-judge && /tmp/go-judge/go-judge -http-addr 127.0.0.1:5050 -parallelism 4 -enable-cpu-rate
#   GOJUDGE_URL=http://127.0.0.1:5050 bench/judge.sh
# -parallelism 4: at least the highest concurrency measured (else requests
# queue in go-judge); -enable-cpu-rate: without it go-judge ignores the
# 1-CPU quota (cpuRateLimit). As root on a cgroup v1 host it creates
# gojudge/ under each controller (log: "v1(gojudge)[cpu, cpuset, cpuacct,
# memory, pids]"); gojudgebench refuses a go-judge whose GET /config shows
# no cgroup. Start it from a directory without mount.yaml to get its
# default mounts (/usr, /lib, /lib64, /bin read-only, tmpfs /w and /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
NCPP=${1:-1000}
NPY=${2:-300}
SOULBOX=${SOULBOX:-$PWD/bin/soulbox}
DATA=${DATA:-/var/lib/soulbox-bench}
WORK=$(mktemp -d /var/tmp/soulbox-judge-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
for t in bwrap g++ python3 xargs; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done
[ -x "$SOULBOX" ] || { echo "bench: build first (make build)" >&2; exit 1; }
GOJUDGE_URL=${GOJUDGE_URL:-}
gjcompile=
if [ -n "$GOJUDGE_URL" ]; then
  curl -fsS "$GOJUDGE_URL/version" >/dev/null || { echo "bench: no go-judge at GOJUDGE_URL=$GOJUDGE_URL" >&2; exit 1; }
  ${GO:-go} build -o "$WORK/gojudgebench" ./bench/gojudgebench
fi

cat > "$WORK/ab.cpp" <<'CPP'
#include <cstdio>
int main() { long a, b; if (scanf("%ld %ld", &a, &b) != 2) return 1; printf("%ld\n", a + b); }
CPP
echo 'print(sum(map(int, input().split())))' > "$WORK/ab.py"
mkcases() { # dir n
  mkdir -p "$1"
  for i in $(seq 1 "$2"); do a=$((RANDOM * 7)); b=$((RANDOM)); echo "$a $b" > "$1/$i.in"; echo $((a + b)) > "$1/$i.out"; done
}
# Python runs as the judge runs it (`soulbox languages --json`: judge_run,
# python3 -S with SoulBox's loader), in every row: the rows compare
# sandboxes, not interpreter flags. The program's path replaces main.py.
readarray -d '' PYRUN < <("$SOULBOX" languages --json | python3 -c '
import json, sys
p = next(l for l in json.load(sys.stdin) if l["name"] == "python")
argv = p.get("judge_run") or p["run"]
argv = ["/usr/bin/python3" if a == "python3" else sys.argv[1] if a == p["source"] else a for a in argv]
sys.stdout.write("".join(a + "\0" for a in argv))' "$WORK/ab.py")
[ "${#PYRUN[@]}" -ge 2 ] || { echo "bench: no python in soulbox languages" >&2; exit 1; }
mkcases "$WORK/cpp" "$NCPP"
mkcases "$WORK/py" "$NPY"
g++ -O2 -o "$WORK/ab" "$WORK/ab.cpp"
chmod 755 "$WORK" "$WORK/ab"

LIMITS=(--memory 256M --cpus 1 --timeout 5s --cpu-time 2s)
rate() { python3 -c "import sys; print(f'{int(sys.argv[1])/float(sys.argv[2]):.0f}')" "$1" "$2"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(float(sys.argv[2])-float(sys.argv[1]))" "$1" "$2"; }

# Compile time, apart: a cold compile into an empty cache, then a hit.
rm -rf "$DATA/cache/compile"
cold=$("$SOULBOX" judge --json --data-dir "$DATA" --lang cpp --tests "$WORK/cpp" "${LIMITS[@]}" "$WORK/ab.cpp" 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["compile"]["ms"], "ms, verdict", r["verdict"])' || true)
echo "compile (cold, g++ -O2 in a sandbox): ${cold}"

soulbox_judge() { # lang src dir n parallel
  local t0 t1 v
  # Only the judge is timed: its JSON is read after t1 (a Python start
  # inside the window would cost this row alone 20-100 ms).
  t0=$(now)
  "$SOULBOX" judge --json --data-dir "$DATA" --lang "$1" --tests "$3" --parallel "$5" "${LIMITS[@]}" "$2" > "$WORK/result.json"
  t1=$(now)
  v=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["verdict"], r["compile"] and r["compile"]["cached"])' "$WORK/result.json")
  echo "$v" | grep -q '^AC' || { echo "bench: verdict $v" >&2; exit 1; }
  rate "$4" "$(elapsed "$t0" "$t1")"
}
loop() { # n parallel cmd... (stdin from each case file)
  local n=$1 p=$2 dir=$3; shift 3
  local t0 t1
  t0=$(now)
  seq 1 "$n" | xargs -P "$p" -I{} sh -c '"$@" < "'"$dir"'/{}.in" > /dev/null' _ "$@"
  t1=$(now)
  rate "$n" "$(elapsed "$t0" "$t1")"
}
BWRAP=(bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64
  --ro-bind "$WORK" "$WORK" --proc /proc --dev /dev --tmpfs /tmp --unshare-all --die-with-parent --new-session)

echo
echo "| runs/s | sequential | 2 at once | 4 at once |"
echo "|---|---|---|---|"
for kind in cpp py; do
  if [ $kind = cpp ]; then n=$NCPP; src=$WORK/ab.cpp; prog=("$WORK/ab"); lang=cpp; else n=$NPY; src=$WORK/ab.py; prog=("${PYRUN[@]}"); lang=python; fi
  row="| $kind: soulbox judge (full isolation, limits) |"
  for p in 1 2 4; do row="$row $(soulbox_judge $lang "$src" "$WORK/$kind" "$n" $p) |"; done
  echo "$row"
  if [ -n "$GOJUDGE_URL" ]; then
    gj=$("$WORK/gojudgebench" -url "$GOJUDGE_URL" -lang $lang -tests "$WORK/$kind" -parallel 1,2,4 "${LIMITS[@]}" "$src")
    [ $kind = cpp ] && gjcompile=$(awk '$1 == "compile_ms" {print $2}' <<<"$gj")
    row="| $kind: go-judge (cgroup limits) |"
    for p in 1 2 4; do row="$row $(awk -v p=$p '$1 == "runs_per_s" && $2 == p {print $3}' <<<"$gj") |"; done
    echo "$row"
  fi
  row="| $kind: bubblewrap (no limits) |"
  for p in 1 2 4; do row="$row $(loop "$n" $p "$WORK/$kind" "${BWRAP[@]}" "${prog[@]}") |"; done
  echo "$row"
  row="| $kind: bare |"
  for p in 1 2 4; do row="$row $(loop "$n" $p "$WORK/$kind" "${prog[@]}") |"; done
  echo "$row"
  if [ $kind = py ]; then
    row="| py: bare, plain \`python3 main.py\` (with site's hooks) |"
    for p in 1 2 4; do row="$row $(loop "$n" $p "$WORK/$kind" /usr/bin/python3 "$WORK/ab.py") |"; done
    echo "$row"
  fi
done
if [ -n "$GOJUDGE_URL" ]; then
  echo
  echo "compile (go-judge, g++ -O2 in its sandbox, one request): ${gjcompile} ms"
fi
