package nsinit

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The init's waits for its program and for the next job use raw system
// calls. The init runs one goroutine on one P (GOMAXPROCS=1) and nothing
// else in it has to run while it waits. Through an ordinary system call
// the Go runtime's monitor thread takes the P away after 20 µs, sleeps
// deeply, and is woken again when the call returns; then it polls every
// 20 µs while the init works, so a judge worker's monitor woke about 18
// times per run, each time preempting a program on a busy host. With raw
// calls the P is never taken, the monitor's back-off grows to 10 ms and
// stays there. The init runs with asynchronous preemption off
// (GODEBUG=asyncpreemptoff=1, set by the runtime), or the monitor would
// signal a goroutine blocked for more than 10 ms at every round.

// idleAfter is how long a worker waits for its next job with a raw call;
// after that it blocks the ordinary way, which lets the monitor sleep
// until a job comes (an idle worker costs no wake-ups).
const idleAfter = time.Second

// wait4 is wait4(2) on a raw system call (ws may be nil).
func wait4(pid int, ws *unix.WaitStatus, options int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(ws)), uintptr(options), 0, 0, 0)
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// awaitReadable waits up to d for fd to become readable (or hung up) on a
// raw system call and reports whether it did.
func awaitReadable(fd int, d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	ts := unix.NsecToTimespec(d.Nanoseconds())
	deadline := time.Now().Add(d)
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			ts = unix.NsecToTimespec(left.Nanoseconds())
		case e != 0:
			return false
		default:
			return n > 0
		}
	}
}
