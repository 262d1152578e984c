//go:build !soulbox_front

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

func full(argv []string) {
	switch argv[0] {
	case nsinit.Arg0: // when no small init is embedded
		nsinit.Main() // never returns
	case server.Arg0:
		server.Main() // never returns
	}
	os.Exit(cli.Main(argv[1:], os.Stdin, os.Stdout, os.Stderr))
}
