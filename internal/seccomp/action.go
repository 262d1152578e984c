//go:build linux

package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

type actionKind uint8

const (
	actInvalid actionKind = iota // zero value: an Action that was never set
	actAllow
	actErrno
	actKillProcess
	actLog
)

// maxErrno is the largest value the C library treats as an error return
// (MAX_ERRNO in the kernel); anything larger would look like a success.
const maxErrno = 4095

// Action is what the kernel does with a system call that a [Rule] matches.
// The zero Action is invalid, so a forgotten field is a compile error
// instead of a silent kill or allow. Actions are comparable values.
type Action struct {
	kind  actionKind
	errno unix.Errno
}

var (
	// Allow lets the system call run.
	Allow = Action{kind: actAllow}
	// KillProcess kills the whole thread group with SIGSYS.
	KillProcess = Action{kind: actKillProcess}
	// Log lets the system call run and records it in the audit log. It is
	// meant for developing a policy, not for production.
	Log = Action{kind: actLog}
)

// Errno makes the system call fail with e without running it.
// e must be in [1, 4095].
func Errno(e unix.Errno) Action {
	return Action{kind: actErrno, errno: e}
}

func (a Action) validate() error {
	switch a.kind {
	case actAllow, actKillProcess, actLog:
		return nil
	case actErrno:
		if a.errno == 0 || a.errno > maxErrno {
			return fmt.Errorf("errno %d out of range [1, %d]", uint64(a.errno), maxErrno)
		}
		return nil
	default:
		return fmt.Errorf("action not set")
	}
}

// ret is the SECCOMP_RET_* value of a validated action.
func (a Action) ret() uint32 {
	switch a.kind {
	case actAllow:
		return unix.SECCOMP_RET_ALLOW
	case actErrno:
		return unix.SECCOMP_RET_ERRNO | uint32(a.errno)&unix.SECCOMP_RET_DATA
	case actLog:
		return unix.SECCOMP_RET_LOG
	default:
		// Unreachable for validated actions; fail closed regardless.
		return unix.SECCOMP_RET_KILL_PROCESS
	}
}

// String returns the action as shown by [Policy.Render], for example
// "ALLOW" or "ERRNO(EPERM)".
func (a Action) String() string {
	switch a.kind {
	case actAllow:
		return "ALLOW"
	case actKillProcess:
		return "KILL_PROCESS"
	case actLog:
		return "LOG"
	case actErrno:
		if name := unix.ErrnoName(a.errno); name != "" {
			return "ERRNO(" + name + ")"
		}
		return fmt.Sprintf("ERRNO(%d)", uint64(a.errno))
	default:
		return "INVALID"
	}
}
