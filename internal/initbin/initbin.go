// Package initbin carries the small sandbox-init binary (cmd/soulbox-init)
// inside the soulbox binary, so a release is still one file while every
// sandbox start runs a small program instead of the whole soulbox binary
// (Go start-up cost grows with binary size; see docs/ARCHITECTURE.md).
//
// `make build` builds cmd/soulbox-init into this directory (with its
// SHA-256 in soulbox-init.sha256) and then
// soulbox with the build tag soulbox_embedinit; without the tag (plain
// `go build`, unit tests) Binary.Data is nil and sandboxes run the soulbox
// binary itself as their init, which behaves the same, only slower.
package initbin

import "github.com/soulbox-dev/soulbox/internal/exebin"

// Binary is the embedded init; its Data is nil when built without it.
var Binary exebin.Embedded
