//go:build linux && !amd64

package seccomp

import (
	"fmt"
	"runtime"
)

// nativeArch fails on architectures without a syscall table here: an
// unchecked table would silently produce a filter for the wrong numbers.
func nativeArch() (arch, error) {
	return arch{}, fmt.Errorf("%w: %s (only amd64 has a syscall table)", ErrUnsupportedArch, runtime.GOARCH)
}
