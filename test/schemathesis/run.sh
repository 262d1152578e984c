#!/usr/bin/env bash
# Runs schemathesis (pinned in requirements.txt) against a SoulBox daemon's
# OpenAPI document: every operation with generated valid and invalid
# requests, checking that no answer is a 5xx and that every answer's
# status, content type and body are the ones the document describes.
#
#   SOULBOX_ST_URL=http://127.0.0.1:PORT SOULBOX_ST_KEY=KEY test/schemathesis/run.sh
#
# test/schemathesis_test.go starts the daemon and calls this. The venv is
# test/schemathesis/.venv (gitignored), created or refreshed when
# requirements.txt changes. SOULBOX_ST_EXAMPLES (default 25) caps the
# generated cases per operation and phase; SOULBOX_ST_SEED (default: the
# config's) changes the cases. (No --max-time: schemathesis repeats its
# fuzzing until that budget is spent; the caller bounds the run instead.)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
die() { echo "test/schemathesis/run.sh: $*" >&2; exit 2; }

url=${SOULBOX_ST_URL:-} key=${SOULBOX_ST_KEY:-}
[ -n "$url" ] && [ -n "$key" ] || die "SOULBOX_ST_URL and SOULBOX_ST_KEY must name a running daemon and an API key"
command -v python3 >/dev/null || die "python3 is required (Python 3.11)"
python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
	die "Python 3.11 is required (requirements.txt hashes its native wheels for CPython 3.11)"

venv=$here/.venv
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
	echo "== pip install into ${venv#"$root"/}"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$here/requirements.txt"
	echo "$want" >"$venv/.requirements.sha256"
fi

args=(
	--checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
	--max-examples "${SOULBOX_ST_EXAMPLES:-25}"
	--request-timeout 60
	--header "X-API-KEY: $key"
	--no-color
)
[ -z "${SOULBOX_ST_SEED:-}" ] || args+=(--seed "$SOULBOX_ST_SEED")
report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT
# Reports and hypothesis' example database go to a temporary directory,
# never into the work tree.
cd "$report"
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "${args[@]}" "$url/openapi.json"
