#!/usr/bin/env bash
# Runs the unmodified E2B SDKs (pinned versions, see README.md) against a
# SoulBox daemon.
#
#   test/e2b/run.sh                 every suite: js/2.14.1 js/2.50.0 js/2.51.0 ci/2.8.0 py
#   test/e2b/run.sh js/2.51.0 py    some of them
#
# js/<version> is the e2b npm package, ci/<version> the
# @e2b/code-interpreter npm package, py the e2b and e2b-code-interpreter
# PyPI packages.
#
# Without SOULBOX_E2B_URL it needs root: it builds bin/soulbox (or uses
# SOULBOX_BIN), starts a daemon on a free loopback port with a temporary
# data directory and an e2b_ key, and at the end deletes every sandbox,
# stops the daemon and removes the directory. With SOULBOX_E2B_URL and
# SOULBOX_E2B_KEY it drives that daemon instead (test/e2b_test.go does).
# Dependencies are installed when missing or stale: npm ci per JS version,
# a venv in py/.venv for Python.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
all_suites=(js/2.14.1 js/2.50.0 js/2.51.0 ci/2.8.0 py)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${all_suites[@]}")

die() { echo "test/e2b/run.sh: $*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2)"; }

for s in "${suites[@]}"; do
	case $s in
	js/*|ci/*) [ -f "$here/$s/package-lock.json" ] || die "unknown suite $s (have: ${all_suites[*]})"
		need node "Node.js 20 or newer"; need npm "npm" ;;
	py) need python3 "Python 3.11 or newer"
		python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required" ;;
	*) die "unknown suite $s (have: ${all_suites[*]})" ;;
	esac
done

install_js() { # version directory
	local dir=$1
	if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
		echo "== npm ci in ${dir#"$root"/}"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
}

install_py() {
	local venv=$here/py/.venv want
	want=$(sha256sum "$here/py/requirements.txt" | cut -d' ' -f1)
	if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
		echo "== pip install into ${venv#"$root"/}"
		rm -rf "$venv"
		python3 -m venv "$venv"
		"$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$here/py/requirements.txt"
		echo "$want" >"$venv/.requirements.sha256"
	fi
}

for s in "${suites[@]}"; do
	case $s in
	js/*|ci/*) install_js "$here/$s" ;;
	py) install_py ;;
	esac
done

# The daemon.
data="" pid="" url="${SOULBOX_E2B_URL:-}" key="${SOULBOX_E2B_KEY:-}"
cleanup() {
	local status=$?
	if [ -n "$pid" ]; then
		# Sandboxes outlive the daemon: delete them through the API first.
		for _ in $(seq 50); do
			ids=$(curl -sf -H "X-API-Key: $key" "$url/v2/sandboxes?limit=100" | grep -o '"sandboxID":"[^"]*"' | cut -d'"' -f4 || true)
			[ -n "$ids" ] || break
			for id in $ids; do curl -sf -o /dev/null -X DELETE -H "X-API-Key: $key" "$url/sandboxes/$id" || true; done
		done
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		if [ $status -ne 0 ]; then
			echo "== daemon log (last 50 lines)"; tail -50 "$data/daemon.log" || true
		fi
	fi
	[ -z "$data" ] || rm -rf "$data"
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$url" ]; then
	[ "$(id -u)" = 0 ] || die "starting a daemon needs root (or set SOULBOX_E2B_URL and SOULBOX_E2B_KEY)"
	need curl "to clean up sandboxes through the API"
	bin=${SOULBOX_BIN:-}
	if [ -z "$bin" ]; then
		make -s -C "$root" build >/dev/null
		bin=$root/bin/soulbox
	fi
	# The sandboxes' unprivileged host uids must traverse the data directory.
	data=$(mktemp -d /var/tmp/soulbox-e2b-XXXXXX)
	chmod 755 "$data"
	key=$("$bin" apikey create --e2b --data-dir "$data" 2>>"$data/daemon.log" | tail -1)
	"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" 2>"$data/daemon.log" &
	pid=$!
	for _ in $(seq 300); do
		url=$(sed -n 's/^soulbox: serving on //p' "$data/daemon.log")
		[ -z "$url" ] || break
		kill -0 "$pid" 2>/dev/null || die "the daemon exited: $(cat "$data/daemon.log")"
		sleep 0.1
	done
	[ -n "$url" ] || die "the daemon did not start in 30 s"
fi
[ -n "$key" ] || die "SOULBOX_E2B_KEY must be set with SOULBOX_E2B_URL"

# What the unmodified SDKs need to talk to SoulBox: the API, the sandbox
# (envd) endpoint on the same port (plain HTTP, E2b-Sandbox-Id header),
# and the key. Nothing else of the caller's E2B configuration applies.
unset E2B_DOMAIN E2B_DEBUG E2B_ACCESS_TOKEN E2B_SANDBOX_DOMAIN
export E2B_API_URL=$url E2B_SANDBOX_URL=$url E2B_API_KEY=$key

failed=()
for s in "${suites[@]}"; do
	echo "== $s against $url"
	case $s in
	js/*) (cd "$here/$s" && node --test --test-reporter=spec ../e2b.test.mjs) || failed+=("$s") ;;
	ci/*) (cd "$here/$s" && node --test --test-reporter=spec ../ci.test.mjs) || failed+=("$s") ;;
	py) (cd "$here/py" && .venv/bin/python -m pytest -q -p no:cacheprovider test_e2b.py test_code_interpreter.py) || failed+=("$s") ;;
	esac
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "== FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "== all passed: ${suites[*]}"
