package server

import (
	"fmt"
	"os"
	"runtime"
)

// tenantCgroup starts processes in the sandbox's nested tenant cgroup. A
// child is born in its parent thread's cgroup, so one OS thread of the
// agent, the forker, moves itself there once (writing "0" to the v1
// "tasks" files or v2 "cgroup.threads" file moves only the writing thread,
// without the kernel's global threadgroup lock) and stays: every start
// runs on it. It holds one of the tenant cgroup's pids for good, which the
// runtime adds to the tenant's limit.
type tenantCgroup struct {
	jobs chan func()
	err  error // set once, before the first job: the forker is not there
}

// newTenantCgroup starts the forker; enter are the files that move it
// (one per v1 hierarchy the tenant cgroup is in).
func newTenantCgroup(enter []*os.File) *tenantCgroup {
	t := &tenantCgroup{jobs: make(chan func())}
	ready := make(chan struct{})
	go func() {
		// Never unlocked: the thread only forks, and new Go threads are
		// cloned from the runtime's template thread, not from it.
		runtime.LockOSThread()
		for _, f := range enter {
			if _, err := f.Write([]byte("0")); err != nil && t.err == nil {
				t.err = fmt.Errorf("enter the tenant cgroup (%s): %w", f.Name(), err)
			}
			f.Close()
		}
		close(ready)
		if t.err != nil {
			return // its thread ends with it
		}
		for job := range t.jobs {
			job()
		}
	}()
	<-ready
	return t
}

// run calls start on the forker. Without a tenant cgroup (t nil) it
// calls it where the agent is; if the forker could not enter it, every
// start fails rather than run with only the sandbox's limit.
func (t *tenantCgroup) run(start func() (int, error)) (int, error) {
	if t == nil {
		return start()
	}
	if t.err != nil {
		return 0, t.err
	}
	type result struct {
		pid int
		err error
	}
	done := make(chan result, 1)
	t.jobs <- func() {
		pid, err := start()
		done <- result{pid, err}
	}
	r := <-done
	return r.pid, r.err
}
