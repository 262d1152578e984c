//go:build soulbox_front

// The front's start is the cost of a pooled run: it does not size
// GOMAXPROCS from the cgroup's CPU limit nor re-read it while it runs (Go
// still reads the cgroup once at start-up, for a metric); the run pool's
// client waits in one goroutine.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"

	"github.com/soulbox-dev/soulbox/internal/fullbin"
	"github.com/soulbox-dev/soulbox/internal/quickrun"
)

func full(argv []string) {
	err := fullbin.Exec(argv)
	fmt.Fprintf(os.Stderr, "soulbox: %v\n", err)
	os.Exit(quickrun.ExitInternal)
}
