//go:build soulbox_embedinit

package initbin

import (
	_ "embed"

	"github.com/soulbox-dev/soulbox/internal/exebin"
)

//go:embed soulbox-init
var embedded []byte

// The SHA-256 of soulbox-init, computed at build time (hashing 2 MB at
// every start would cost milliseconds).
//
//go:embed soulbox-init.sha256
var embeddedSum string

func init() { Binary = exebin.Embed(embedded, embeddedSum) }
