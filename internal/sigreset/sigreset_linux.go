// Package sigreset restores the default disposition of every signal the
// calling process ignores. An ignored signal stays ignored across fork and
// exec, so a sandbox's init and agent, which inherit whatever their
// launcher ignored (a shell, a CI runner, nohup), reset them before they
// start tenant programs: those must begin with default dispositions.
package sigreset

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is the kernel's struct sigaction on x86-64 and arm64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	sigDFL = 0
	sigIGN = 1
	maxSig = 64
)

// ResetIgnored sets every ignored signal back to its default action and
// returns the signals it changed. Signals with handlers (the Go runtime's)
// are left alone.
func ResetIgnored() ([]unix.Signal, error) {
	var changed []unix.Signal
	for sig := 1; sig <= maxSig; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
			continue // not a valid signal number here
		}
		if old.handler != sigIGN {
			continue
		}
		dfl := kernelSigaction{handler: sigDFL}
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0); e != 0 {
			return changed, e
		}
		changed = append(changed, unix.Signal(sig))
	}
	return changed, nil
}
