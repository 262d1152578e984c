package server

import (
	"fmt"
	"os"
	"runtime"
)

// tenantCgroup starts processes in the sandbox's nested tenant cgroup. A
// child is born in its parent thread's cgroup, so the thread that forks
// moves itself there first and back after: writing "0" moves only the
// writing thread (v1 "tasks", v2 "cgroup.threads" of a threaded cgroup),
// without the kernel's global threadgroup lock.
type tenantCgroup struct {
	enter, leave *os.File
}

// run calls start on an OS thread moved into the tenant cgroup. If that
// thread cannot be moved back, it is not reused: its goroutine exits
// still locked, and the Go runtime ends the thread. A nil t runs start
// where the agent is.
func (t *tenantCgroup) run(start func() (int, error)) (int, error) {
	if t == nil {
		return start()
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if _, err := t.enter.Write([]byte("0")); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter the tenant cgroup: %w", err)}
			return
		}
		pid, err := start()
		if _, lerr := t.leave.Write([]byte("0")); lerr != nil {
			// pid (if any) is started and the caller's to reap.
			done <- result{pid, err}
			return // still locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
		done <- result{pid, err}
	}()
	r := <-done
	return r.pid, r.err
}
