// Command soulbox is SoulBox's single binary: the CLI, the one-shot runner
// and, when started as "soulbox-init", the init of every sandbox.
package main

import (
	"os"
	"runtime"

	"github.com/soulbox-dev/soulbox/internal/agent/server"
	"github.com/soulbox-dev/soulbox/internal/cli"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
)

func init() {
	if os.Args[0] == nsinit.Arg0 {
		// Called from init, this keeps main on the process's main thread.
		runtime.LockOSThread()
	}
}

func main() {
	switch os.Args[0] {
	case nsinit.Arg0: // when no small init is embedded
		nsinit.Main() // never returns
	case server.Arg0:
		server.Main() // never returns
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
