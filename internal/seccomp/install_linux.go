package seccomp

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads prog as a seccomp filter for every thread of the calling
// process (SECCOMP_FILTER_FLAG_TSYNC). The filter is permanent and is
// inherited across fork and execve; filters only ever stack.
//
// The caller must already have set no_new_privs
// (prctl(PR_SET_NO_NEW_PRIVS, 1)); Install returns [ErrNoNewPrivs] instead
// of relying on CAP_SYS_ADMIN to load a filter without it. It also fails if
// any thread cannot be synchronized, so a nil error means the whole process
// is filtered.
func Install(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > bpfMaxInsns {
		return fmt.Errorf("seccomp: program length %d out of range [1, %d]", len(prog), bpfMaxInsns)
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("seccomp: read no_new_privs: %w", err)
	}
	if nnp != 1 {
		return ErrNoNewPrivs
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP,
		unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("seccomp: install filter: %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive return is the ID of a thread that could
		// not be synchronized; no thread got the filter.
		return fmt.Errorf("seccomp: install filter: thread %d could not be synchronized", r)
	}
	return nil
}
