// Package caps changes a process's Linux capability sets, on the calling
// thread or on every thread of a Go process (capabilities are per thread;
// syscall.AllThreadsSyscall needs a cgo-free binary).
package caps

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Mask is a set of capabilities, bit n for capability n.
type Mask uint64

// Of returns the mask holding the given capabilities.
func Of(cs ...int) Mask {
	var m Mask
	for _, c := range cs {
		m |= 1 << c
	}
	return m
}

// DropBounding empties the bounding set, except the capabilities in keep,
// and the ambient set: on the calling thread, or on every thread
// (AllThreadsSyscall stops the world once per capability, about a
// millisecond). It needs CAP_SETPCAP in the effective set.
func DropBounding(keep Mask, everyThread bool) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	prctl := func(option, arg uintptr) error {
		if everyThread {
			if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, option, arg, 0); e != 0 {
				return e
			}
			return nil
		}
		return unix.Prctl(int(option), arg, 0, 0, 0)
	}
	for c := 0; c <= last; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		if err := prctl(unix.PR_CAPBSET_DROP, uintptr(c)); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", c, err)
		}
	}
	if err := prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}

// Set sets the permitted and effective sets of every thread to keep and
// the inheritable set to empty.
func Set(keep Mask) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(keep), Permitted: uint32(keep)},
		{Effective: uint32(keep >> 32), Permitted: uint32(keep >> 32)},
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse cap_last_cap: %w", err)
	}
	return n, nil
}
