package process

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Waiter starts child processes and reaps them. Inside a sandbox the agent
// is PID 1 and must also reap orphans, so one reaper owns every wait and
// hands each started process its status (see nsinit); elsewhere
// DirectWaiter waits for each child by pid.
type Waiter interface {
	// Launch calls start, which starts one child and returns its pid, and
	// returns a function that blocks until that child ends.
	Launch(start func() (pid int, err error)) (wait func() syscall.WaitStatus, err error)
}

// DirectWaiter waits for each child by its pid. Use it only where nothing
// else reaps the process's children.
type DirectWaiter struct{}

// Launch implements Waiter.
func (DirectWaiter) Launch(start func() (int, error)) (func() syscall.WaitStatus, error) {
	pid, err := start()
	if err != nil {
		return nil, err
	}
	return func() syscall.WaitStatus {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				return syscall.WaitStatus(ws)
			}
		}
	}, nil
}
