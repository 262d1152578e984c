package runtime

import (
	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
	"github.com/soulbox-dev/soulbox/internal/result"
)

// Status is the verdict of a run (see internal/result).
type Status = result.Status

// Verdicts, as in docs/ARCHITECTURE.md.
const (
	StatusOK  = result.StatusOK
	StatusRE  = result.StatusRE
	StatusSG  = result.StatusSG
	StatusTLE = result.StatusTLE
	StatusMLE = result.StatusMLE
	StatusOLE = result.StatusOLE
	StatusFSE = result.StatusFSE
	StatusSV  = result.StatusSV
	StatusXX  = result.StatusXX
)

// Result is what happened to one run (see internal/result).
type Result = result.Result

// File is a collected file (see internal/result).
type File = result.File

// classify sets Status (and ExitCode/Signal) from how the run ended.
// Limits the runtime enforced itself come first: they explain whatever
// the program did afterwards (e.g. dying of the SIGKILL we sent).
func classify(r *Result, reason killReason, exit nsinit.Event, gotExit bool, l limits.Limits) {
	ws := unix.WaitStatus(exit.Status)
	switch {
	case !gotExit:
		r.Signal = unix.SIGKILL
		r.ExitCode = 128 + int(unix.SIGKILL)
	case ws.Signaled():
		r.Signal = ws.Signal()
		r.ExitCode = 128 + int(ws.Signal())
	default:
		r.ExitCode = ws.ExitStatus()
	}
	failed := r.Signal != 0 || r.ExitCode != 0
	switch {
	case reason == killedWall || reason == killedCPU:
		r.Status = StatusTLE
	case reason == killedOutput:
		r.Status = StatusOLE
	case r.CPU >= l.CPUTime || r.Signal == unix.SIGXCPU:
		r.Status = StatusTLE
	case r.OOMKills > 0 && failed:
		r.Status = StatusMLE
	case !gotExit:
		// The init died without being asked to and without an OOM kill.
		r.Status = StatusXX
	case r.Signal == unix.SIGXFSZ || (exit.DiskFull && failed):
		r.Status = StatusFSE
	case r.Signal == unix.SIGSYS:
		r.Status = StatusSV
	case r.Signal != 0:
		r.Status = StatusSG
	case r.ExitCode != 0:
		r.Status = StatusRE
	default:
		r.Status = StatusOK
	}
}
