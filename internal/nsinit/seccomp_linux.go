package nsinit

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/seccomp"
)

// installSeccomp installs the filter on every thread. An empty program is
// an error: the sandbox never runs without its filter.
func installSeccomp(prog []unix.SockFilter) error {
	if len(prog) == 0 {
		return errors.New("seccomp: no filter supplied")
	}
	if err := seccomp.Install(prog); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
