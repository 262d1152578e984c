#!/usr/bin/env bash
# Runs SoulBox's Go tests inside the scripts/vm guest: stock Debian 12 kernel,
# pure cgroup v2 (this is what `make test-cgroupv2` runs).
#
#   scripts/vm/cgroupv2-test.sh [PACKAGE-PATTERN...]     default: ./...
#
# Test binaries are built on the host (go test -c), then one VM boot runs,
# each in its package directory, as root: first the guest self-test
# (scripts/vm/selftest: cgroup v2, CLONE_INTO_CGROUP, userns overlay,
# open_tree, seccomp), then every package that has tests.
# Environment:
#   TESTFLAGS   extra flags for every test binary, e.g. "-test.v -test.run Foo"
#   VM_TIMEOUT  whole VM run timeout in seconds (default 3600)
#   VM_ARGS     extra scripts/vm/run.sh options, e.g. "--mem 4G --cpus 2"
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd -P)
export PATH=$PATH:/usr/local/go/bin
export CGO_ENABLED=${CGO_ENABLED:-0}
command -v go >/dev/null || { echo "cgroupv2-test: go not found" >&2; exit 1; }

[ $# -gt 0 ] || set -- ./...
WORK=$(mktemp -d /var/tmp/soulbox-vmtest.XXXXXX)  # /var/tmp: visible in the guest
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"

echo "cgroupv2-test: building test binaries in $WORK"
: >"$WORK/list"
(cd scripts/vm/selftest && go test -c -o "$WORK/vm-selftest.test" .)
printf '%s\t%s\t%s\n' "scripts/vm/selftest" "$REPO/scripts/vm/selftest" "$WORK/vm-selftest.test" >>"$WORK/list"
while read -r ip dir; do
	[ -n "$ip" ] || continue
	bin="$WORK/$(echo "${ip#*/*/*/}" | tr '/' '_').test"
	go test -c -o "$bin" "$ip"
	[ -x "$bin" ] || continue  # no test files after build constraints
	printf '%s\t%s\t%s\n' "$ip" "$dir" "$bin" >>"$WORK/list"
done < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' "$@")

cat >"$WORK/run-all.sh" <<'EOF'
#!/bin/bash
# Runs inside the guest: each test binary in its package dir.
list=$1; shift
pass=0 fail=0 failed=()
while IFS=$'\t' read -r ip dir bin; do
	t0=$(date +%s%N)
	(cd "$dir" && "$bin" -test.count=1 -test.timeout=20m "$@")
	rc=$?
	secs=$(awk -v n=$(( $(date +%s%N) - t0 )) 'BEGIN { printf "%.3f", n / 1e9 }')
	if [ $rc -eq 0 ]; then
		printf 'ok  \t%s\t%ss\n' "$ip" "$secs"; pass=$((pass + 1))
	else
		printf 'FAIL\t%s\t%ss\n' "$ip" "$secs"; fail=$((fail + 1)); failed+=("$ip")
	fi
done <"$list"
[ $fail -eq 0 ] || printf 'failed: %s\n' "${failed[*]}"
echo "cgroupv2: $pass passed, $fail failed"
[ $fail -eq 0 ]
EOF
chmod +x "$WORK/run-all.sh"

echo "cgroupv2-test: running $(wc -l <"$WORK/list") test binaries in the VM"
# shellcheck disable=SC2086 # VM_ARGS and TESTFLAGS are word lists
scripts/vm/run.sh --timeout "${VM_TIMEOUT:-3600}" ${VM_ARGS:-} --env CGO_ENABLED -- \
	bash "$WORK/run-all.sh" "$WORK/list" ${TESTFLAGS:-}
