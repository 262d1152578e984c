#!/usr/bin/env bash
# Start-up benchmark: `soulbox run` against bare execution, bubblewrap,
# crun, runc and firejail, interleaved in the same hyperfine rounds on this
# machine. soulbox is measured twice: with a daemon on the host (its run
# pool: 4 sandboxes set up ahead of demand, cleaned between runs) and
# setting up its own sandbox (--no-pool).
# Usage (as root, from the repository): [ROUNDS=5] bench/run.sh [RUNS]
# Writes bench/results/startup-<command>.json and prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-300}
ROUNDS=${ROUNDS:-5}      # RUNS split into this many rounds (see run_case)
WARMUP=${WARMUP:-5}      # warm-up runs per runner and round
SOULBOX=${SOULBOX:-$PWD/bin/soulbox}
DATA=${DATA:-/var/lib/soulbox-bench}
OUT=bench/results
WORK=$(mktemp -d /var/tmp/soulbox-bench-XXXXXX)
DAEMON=""
trap '[ -n "$DAEMON" ] && kill "$DAEMON" && wait "$DAEMON"; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

for t in hyperfine bwrap crun runc firejail python3; do
  command -v "$t" >/dev/null || { echo "bench: $t is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$SOULBOX" ] || { echo "bench: build first (make build)" >&2; exit 1; }

# The daemon whose run pool `soulbox run` uses (no long-lived pool: only
# the run pool works during the measurement).
"$SOULBOX" serve --listen 127.0.0.1:0 --data-dir "$DATA" --pool 0 --run-pool 4 2>"$WORK/daemon.log" &
DAEMON=$!
for _ in $(seq 100); do [ -S "$DATA/run2.sock" ] && break; sleep 0.1; done
[ -S "$DATA/run2.sock" ] || { echo "bench: the daemon did not start:" >&2; cat "$WORK/daemon.log" >&2; exit 1; }

# An OCI bundle per runtime: a tiny rootfs with the host's /usr bound
# read-only, the merged-/usr symlinks, fresh /proc and /dev, and the default
# namespaces of `runc spec` plus a network namespace (only loopback).
bundle() { # $1 dir, $2... args
  local dir=$1; shift
  mkdir -p "$dir/rootfs"/{usr,proc,dev,tmp}
  for l in bin sbin lib lib64; do ln -sfn "usr/$l" "$dir/rootfs/$l"; done
  (cd "$dir" && runc spec >/dev/null 2>&1 || true; rm -f config.json; runc spec)
  python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["args"] = args
c["process"]["terminal"] = False
c["root"]["readonly"] = True
c["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nosuid", "nodev"]})
c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=65536k"]})
ns = c["linux"]["namespaces"]
if not any(n["type"] == "network" for n in ns):
    ns.append({"type": "network"})
c["linux"]["resources"] = {"memory": {"limit": 268435456}, "pids": {"limit": 64}, "cpu": {"quota": 100000, "period": 100000}}
json.dump(c, open(path, "w"), indent=1)
PY
}

# crun refuses hybrid cgroup hosts (v1 controllers plus a controller-less
# cgroup2 at /sys/fs/cgroup/unified). On such hosts it runs in a private
# mount namespace without that mount, so it still applies its cgroup
# limits through v1; the wrapper's own cost is measured as its own row.
CRUN_WRAP=""
if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts; then
  CRUN_WRAP="unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified && exec \"\$0\" \"\$@\"'"
fi

run_case() { # $1 name, $2... command
  local name=$1; shift
  local quoted=$(printf '%q ' "$@")
  bundle "$WORK/crun-$name" "$@"
  bundle "$WORK/runc-$name" "$@"
  local bw="bwrap --unshare-all --cap-drop ALL --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp $quoted"
  # Warm the soulbox template and caches first.
  "$SOULBOX" run --no-pool --data-dir "$DATA" -- "$@" >/dev/null
  local runners=(
    bare "$quoted"
    "soulbox (daemon's run pool)" "$SOULBOX run --data-dir $DATA -- $quoted"
    "soulbox (own set-up)" "$SOULBOX run --no-pool --data-dir $DATA -- $quoted"
    bubblewrap "$bw"
    crun "$CRUN_WRAP crun run --bundle $WORK/crun-$name sbbench-crun-$name"
    crun-wrapper-only "$CRUN_WRAP /bin/true"
    runc "runc run --bundle $WORK/runc-$name sbbench-runc-$name"
    firejail "firejail --quiet --noprofile --net=none --caps.drop=all --seccomp --private-tmp $quoted"
  )
  # hyperfine runs its commands one after another, each in one block; on
  # a machine whose speed drifts over minutes that favours whichever
  # runner's block lands in a fast stretch. So the runs are split into
  # ROUNDS hyperfine invocations, each starting with a different runner
  # (the order rotated), and summarize merges each runner's runs.
  local n=$(( ${#runners[@]} / 2 )) per=$(( (RUNS + ROUNDS - 1) / ROUNDS )) r i k args
  rm -f "$OUT"/startup-"$name"-r*.json
  for ((r = 0; r < ROUNDS; r++)); do
    args=()
    for ((i = 0; i < n; i++)); do
      k=$(( (i + r) % n ))
      args+=(-n "${runners[2*k]}" "${runners[2*k+1]}")
    done
    hyperfine -N --warmup "$WARMUP" --runs "$per" --export-json "$OUT/startup-$name-r$r.json" "${args[@]}" >/dev/null
  done
}

run_case true /bin/true
run_case python3 /usr/bin/python3 -c pass

python3 - "$OUT" <<'PY'
import glob, json, sys, os, random, statistics
out = sys.argv[1]
for name in ("true", "python3"):
    rounds, order = [], []
    for f in sorted(glob.glob(os.path.join(out, f"startup-{name}-r*.json"))):
        rnd = {}
        for r in json.load(open(f))["results"]:
            if r["command"] not in order:
                order.append(r["command"])
            rnd[r["command"]] = r["times"]
        rounds.append(rnd)
    times = {c: [t for rnd in rounds for t in rnd[c]] for c in order}
    canonical = ["bare", "soulbox (daemon's run pool)", "soulbox (own set-up)", "bubblewrap", "crun", "crun-wrapper-only", "runc", "firejail"]
    order.sort(key=lambda c: canonical.index(c) if c in canonical else len(canonical))
    json.dump({"results": [{"command": c, "times": times[c]} for c in order]}, open(os.path.join(out, f"startup-{name}.json"), "w"))
    rows = {}
    for c in order:
        t = sorted(times[c])
        rows[c] = (t[len(t)//2]*1000, t[int(len(t)*0.95)]*1000, statistics.mean(t)*1000, len(t))
    bw = rows["bubblewrap"][0]
    # The ratio's uncertainty: whole rounds resampled (the machine drifts
    # between rounds, so runs within one are not independent), the 2.5th
    # and 97.5th percentiles of 1000 such p50 ratios.
    rng = random.Random(1)
    def interval(c):
        rs = []
        for _ in range(1000):
            pick = rng.choices(rounds, k=len(rounds))
            a = [t for rnd in pick for t in rnd[c]]
            b = [t for rnd in pick for t in rnd["bubblewrap"]]
            rs.append(statistics.median(a) / statistics.median(b))
        rs.sort()
        return rs[25], rs[974]
    print(f"\n### `{name}`\n")
    print("| runner | runs | p50 ms | p95 ms | mean ms | p50 / bubblewrap | 95% interval |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, (p50, p95, mean, n) in rows.items():
        lo, hi = interval(k)
        print(f"| {k} | {n} | {p50:.2f} | {p95:.2f} | {mean:.2f} | {p50/bw:.2f} | {lo:.2f}–{hi:.2f} |")
    if "crun-wrapper-only" in rows:
        print(f"\ncrun minus its wrapper (p50): {rows['crun'][0]-rows['crun-wrapper-only'][0]:.2f} ms")
PY
