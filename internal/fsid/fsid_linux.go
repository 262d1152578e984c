// Package fsid runs code as another user for file system access only: on
// an OS thread whose file system uid and gid (setfsuid, setfsgid) are that
// user's, so the kernel checks permissions as that user and files the code
// creates belong to it. The agent's file API, the agent's writes to its
// children's /proc files and a judge worker's clean-up between runs use it.
package fsid

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrIdentity means the calling process could not take on the ids (it
// lacks CAP_SETUID or CAP_SETGID in its user namespace).
var ErrIdentity = errors.New("cannot act as the requesting user")

// MaxLocked is how many calls of As may hold an OS thread at once; more
// wait. A process whose threads share a small pids limit (the agent, see
// server.PidsReserve) must not need a thread per concurrent request.
const MaxLocked = 8

var locked = make(chan struct{}, MaxLocked)

// As runs fn with the file system ids uid and gid. They are per thread in
// Linux (setfsuid and setfsgid are plain system calls, not the all-threads
// emulation Go uses for setuid), fn runs on a goroutine of its own locked
// to its thread, and new Go threads are cloned from the runtime's template
// thread while a thread is locked, so the ids never leak to other
// goroutines. Both changes are checked: the kernel ignores a refused one
// silently. If the ids cannot be restored, that goroutine exits still
// locked, and the runtime terminates the thread instead of reusing it.
//
// Supplementary groups are not changed (setgroups is process-wide in Go).
// fn must not start goroutines that touch the file system; descriptors it
// opens may be used on any thread.
func As(uid, gid uint32, fn func() error) error {
	locked <- struct{}{}
	defer func() { <-locked }()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		uid0, gid0 := ids()
		if err := set(uid, gid); err != nil {
			if set(uid0, gid0) != nil {
				done <- err
				return // still locked: the thread dies with this goroutine
			}
			runtime.UnlockOSThread()
			done <- fmt.Errorf("%w (uid %d, gid %d): needs CAP_SETUID and CAP_SETGID", ErrIdentity, uid, gid)
			return
		}
		err := fn()
		if rerr := set(uid0, gid0); rerr != nil {
			done <- fmt.Errorf("cannot restore the file system ids (uid %d, gid %d): %w", uid0, gid0, rerr)
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// ids returns the calling thread's file system uid and gid: setfsuid with
// an invalid id changes nothing and returns the current one.
func ids() (uid, gid uint32) {
	u, _ := unix.SetfsuidRetUid(-1)
	g, _ := unix.SetfsgidRetGid(-1)
	return uint32(u), uint32(g)
}

// set sets the thread's fsgid, then its fsuid (the uid change may drop
// what the gid change needs), and checks both took effect.
func set(uid, gid uint32) error {
	unix.SetfsgidRetGid(int(gid))
	unix.SetfsuidRetUid(int(uid))
	if u, g := ids(); u != uid || g != gid {
		return ErrIdentity
	}
	return nil
}
