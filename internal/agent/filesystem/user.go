package filesystem

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// User is whom a request acts as: the file system ids every operation
// runs with, and the directory relative paths resolve against.
type User struct {
	UID, GID uint32
	Home     string
}

// errIdentity means the agent could not take on a user's file system ids,
// typically because it lacks CAP_SETUID or CAP_SETGID.
var errIdentity = errors.New("cannot act as the requesting user")

// asUser runs fn on an OS thread whose file system uid and gid are the
// user's, so the kernel checks permissions as that user and files fn
// creates belong to it. fsuid and fsgid are per thread in Linux (setfsuid
// and setfsgid are plain system calls, not the all-threads emulation Go
// uses for setuid), the thread is locked for fn, and new Go threads are
// cloned from the runtime's template thread while a thread is locked, so
// the ids never leak to other goroutines.
//
// Supplementary groups are not changed: setgroups is process-wide in Go
// and the agent runs with none, so access through groups is by the fsgid
// alone (a user's secondary groups are not honoured).
//
// fn runs on a goroutine of its own: if the ids cannot be restored, that
// goroutine exits still locked to its thread, which the runtime then
// terminates instead of reusing. fn must not start goroutines that touch
// the file system, and descriptors it opens may be used on any thread.
func asUser(u User, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		uid0, gid0 := fsids()
		if err := setFSIDs(u.UID, u.GID); err != nil {
			if restoreFSIDs(uid0, gid0) != nil {
				done <- err
				return // still locked: the thread dies with this goroutine
			}
			runtime.UnlockOSThread()
			done <- err
			return
		}
		err := fn()
		if rerr := restoreFSIDs(uid0, gid0); rerr != nil {
			done <- rerr
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// fsids returns the calling thread's file system uid and gid. setfsuid
// with an invalid id changes nothing and returns the current one.
func fsids() (uid, gid uint32) {
	u, _ := unix.SetfsuidRetUid(-1)
	g, _ := unix.SetfsgidRetGid(-1)
	return uint32(u), uint32(g)
}

// setFSIDs sets the thread's fsgid, then its fsuid, and checks both took
// effect: the kernel ignores the call silently when it is not permitted.
func setFSIDs(uid, gid uint32) error {
	unix.SetfsgidRetGid(int(gid))
	unix.SetfsuidRetUid(int(uid))
	if u, g := fsids(); u != uid || g != gid {
		return fmt.Errorf("%w (uid %d, gid %d): the agent needs CAP_SETUID and CAP_SETGID", errIdentity, uid, gid)
	}
	return nil
}

func restoreFSIDs(uid, gid uint32) error {
	unix.SetfsuidRetUid(int(uid))
	unix.SetfsgidRetGid(int(gid))
	if u, g := fsids(); u != uid || g != gid {
		return fmt.Errorf("cannot restore the agent's file system ids (uid %d, gid %d)", uid, gid)
	}
	return nil
}
