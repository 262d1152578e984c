#!/usr/bin/env bash
# Installs what SoulBox's build, demo and tests need on a Debian 12 host,
# and nothing that is already there. Usage: scripts/install-deps.sh [run|test|bench]
# (scripts/vm/run.sh installs what the cgroup v2 guest needs itself.)
set -euo pipefail
what=${1:-run}

need_pkgs=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_pkgs+=("$1"); }

# The sandbox's host template shows the host's /usr: the languages tests use
# must be Debian's (not a per-user install under /root, which sandboxes never see).
want python3
want bash
want coreutils
# The language runtimes of `soulbox run --lang` and `soulbox judge` for the
# host template (internal/lang lists them; Julia is not packaged in Debian 12:
# its template is built by make template-julia).
lang_pkgs=(python3-numpy python3-pandas python3-matplotlib nodejs node-typescript
  ruby golang-go rustc default-jdk-headless mono-mcs mono-runtime php-cli
  r-base-core gcc g++)
case "$what" in
  run|test)
    # Builds the julia template's root file system (make template-julia).
    want mmdebstrap
    for p in "${lang_pkgs[@]}"; do
      # nodejs may come from another repository (NodeSource): a node under /usr is enough.
      if [ "$p" = nodejs ] && [ -x /usr/bin/node ]; then continue; fi
      want "$p"
    done
    ;;
esac
case "$what" in
  test)
    want python3; want curl
    # The E2B SDK suites (test/e2b): Node.js with npm, and Python's venv
    # (also for schemathesis, test/schemathesis, whose run.sh makes its venv).
    command -v node >/dev/null || want nodejs
    command -v npm >/dev/null || want npm
    python3 -c 'import ensurepip, venv' 2>/dev/null || want python3-venv
    ;;
  bench) want bubblewrap; want crun; want runc; want firejail; want hyperfine ;;
esac

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: need root to install: ${need_pkgs[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

command -v go >/dev/null || { echo "install-deps: Go is required (https://go.dev/doc/install); go.mod names the version" >&2; exit 1; }
go mod download
