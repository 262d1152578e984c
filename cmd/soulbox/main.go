// Command soulbox is SoulBox's single binary: the CLI, the one-shot runner,
// the daemon and, when started under their names, the sandbox init and
// agent.
//
// `make build` builds it twice: the full program (full.go), which is then
// embedded in a small front (front.go, build tag soulbox_front) that runs
// `soulbox run` through a daemon's run pool itself and executes the full
// program for everything else; see internal/fullbin. A plain `go build`
// gives the full program alone.
package main

import (
	"os"

	"github.com/soulbox-dev/soulbox/internal/quickrun"
)

func main() {
	code, next := quickrun.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)
	if next == nil {
		os.Exit(code)
	}
	full(next)
}
