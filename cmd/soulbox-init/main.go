// Command soulbox-init is the init of every sandbox: a small program, so
// that sandbox start-up does not pay for the whole soulbox binary. It is
// embedded in soulbox (internal/initbin) and written under the data
// directory at first use; it is not meant to be run by hand.
package main

import (
	"runtime"

	"github.com/soulbox-dev/soulbox/internal/nsinit"
)

// Called from init, this keeps main on the process's main thread.
func init() { runtime.LockOSThread() }

func main() { nsinit.Main() }
