package cgroup

import (
	"os/exec"
	"syscall"
	"testing"
)

// startChildInto starts a sleeping child directly in the cgroup open at
// fd (clone3 CLONE_INTO_CGROUP).
func startChildInto(t *testing.T, fd int) *child {
	t.Helper()
	c := &child{cmd: exec.Command("/bin/sleep", "10"), out: new(lockedBuffer), done: make(chan struct{})}
	c.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start with CgroupFD: %v", err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill() // may have exited already
		<-c.done
	})
	return c
}
