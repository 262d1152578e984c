//go:build soulbox_front

package fullbin

import (
	_ "embed"

	"github.com/soulbox-dev/soulbox/internal/exebin"
)

//go:embed soulbox-full
var embedded []byte

// The SHA-256 of soulbox-full, computed at build time.
//
//go:embed soulbox-full.sha256
var embeddedSum string

func init() { Binary = exebin.Embed(embedded, embeddedSum) }
