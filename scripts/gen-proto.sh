#!/usr/bin/env bash
# Generates Go code from api/proto into the Go SDK's module, sdk/go (or
# into $1, for the regenerate-and-diff check): the agent's envd services
# into envd/, SoulBox's own control-plane services into soulboxpb/. Installs pinned tools if missing: protoc from
# Debian's protobuf-compiler, protoc-gen-go and protoc-gen-connect-go from
# the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-sdk/go}
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_CONNECT_GO=v1.21.1
TOOLS=$(go env GOPATH)/soulbox-tools
export PATH=$TOOLS/protoc-gen-go-$PROTOC_GEN_GO:$TOOLS/protoc-gen-connect-go-$PROTOC_GEN_CONNECT_GO:$PATH

if ! command -v protoc >/dev/null || [ ! -f /usr/include/google/protobuf/timestamp.proto ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev
fi
[ -x "$TOOLS/protoc-gen-go-$PROTOC_GEN_GO/protoc-gen-go" ] ||
  GOBIN=$TOOLS/protoc-gen-go-$PROTOC_GEN_GO go install google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO
[ -x "$TOOLS/protoc-gen-connect-go-$PROTOC_GEN_CONNECT_GO/protoc-gen-connect-go" ] ||
  GOBIN=$TOOLS/protoc-gen-connect-go-$PROTOC_GEN_CONNECT_GO go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$PROTOC_GEN_CONNECT_GO

mkdir -p "$OUT"
MOD=github.com/soulbox-dev/soulbox/sdk/go
for f in process/process.proto filesystem/filesystem.proto soulbox/v1/code.proto; do
  protoc -I api/proto -I /usr/include \
    --go_out="$OUT" --go_opt=module=$MOD \
    --connect-go_out="$OUT" --connect-go_opt=module=$MOD \
    "api/proto/$f"
done
