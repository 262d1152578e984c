//go:build linux

package seccomp

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probe is one system call made by a child, with the result the filter
// must produce.
type probe struct {
	name string
	want unix.Errno // 0 means the call must reach the kernel and succeed
	// discriminating: the unfiltered kernel returns something other than
	// want, so getting want proves the filter acted.
	discriminating bool
	// noBaseline: the call is not made without the filter (it could load
	// a kernel module on the host).
	noBaseline bool
	run        func() unix.Errno
}

func sys(nr uintptr, args ...uintptr) unix.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return e
}

// socketProbe opens and closes a socket.
func socketProbe(domain, typ, proto int) func() unix.Errno {
	return func() unix.Errno {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return errnoOf(err)
		}
		unix.Close(fd)
		return 0
	}
}

// ioctlProbe issues an ioctl on /dev/null, which is not a terminal: the
// kernel itself answers ENOTTY, so EPERM can only come from the filter,
// and TIOCSTI cannot inject anything even if it got through.
func ioctlProbe(req uint64) func() unix.Errno {
	return func() unix.Errno {
		fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return errnoOf(err)
		}
		defer unix.Close(fd)
		var b byte = 'x'
		return sys(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&b)))
	}
}

// errnoOf extracts the errno from a failed call; other errors (there
// should be none) map to an errno no probe expects.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EHWPOISON // the highest Linux errno
}

func probes() []probe {
	empty := []byte{0}
	emptyPath := uintptr(unsafe.Pointer(&empty[0]))
	return []probe{
		{name: "getpid", run: func() unix.Errno { return sys(unix.SYS_GETPID) }},
		// Empty target path: the kernel says ENOENT before any privilege check.
		{name: "mount", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_MOUNT, emptyPath, emptyPath, emptyPath, 0, 0)
		}},
		{name: "chroot", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_CHROOT, emptyPath)
		}},
		// A Go process is multithreaded, so the kernel says EINVAL.
		{name: "unshare(CLONE_NEWUSER)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_UNSHARE, unix.CLONE_NEWUSER)
		}},
		{name: "setns(-1)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_SETNS, ^uintptr(0), 0)
		}},
		// CLONE_FS with a new user or mount namespace is EINVAL in the
		// kernel, so the call cannot fork even without the filter.
		{name: "clone(CLONE_NEWUSER|CLONE_FS)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_CLONE, unix.CLONE_NEWUSER|unix.CLONE_FS|uintptr(unix.SIGCHLD))
		}},
		{name: "clone(CLONE_NEWNS|CLONE_FS)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_CLONE, unix.CLONE_NEWNS|unix.CLONE_FS|uintptr(unix.SIGCHLD))
		}},
		// clone3 with size 0 is EINVAL in the kernel.
		{name: "clone3", want: unix.ENOSYS, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_CLONE3, 0, 0)
		}},
		// Implemented by the kernel (EBADF here), absent from the policy.
		{name: "process_mrelease(-1)", want: unix.ENOSYS, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_PROCESS_MRELEASE, ^uintptr(0), 0)
		}},
		{name: "nr 1000", want: unix.ENOSYS, run: func() unix.Errno { return sys(1000) }},
		{name: "ptrace(PEEKDATA, 0)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, 0, 0, 0)
		}},
		{name: "bpf", want: unix.EPERM, run: func() unix.Errno { return sys(unix.SYS_BPF, 0xffff, 0, 0) }},
		{name: "io_uring_setup", want: unix.EPERM, run: func() unix.Errno { return sys(unix.SYS_IO_URING_SETUP, 0, 0) }},
		{name: "socket(AF_VSOCK)", want: unix.EPERM, noBaseline: true, run: socketProbe(unix.AF_VSOCK, unix.SOCK_STREAM, 0)},
		{name: "socket(AF_INET)", run: socketProbe(unix.AF_INET, unix.SOCK_STREAM, 0)},
		{name: "socket(AF_INET6)", run: socketProbe(unix.AF_INET6, unix.SOCK_DGRAM, 0)},
		{name: "socket(AF_UNIX)", run: socketProbe(unix.AF_UNIX, unix.SOCK_STREAM, 0)},
		{name: "socket(AF_NETLINK, NETLINK_ROUTE)", run: socketProbe(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)},
		{name: "socket(AF_NETLINK, NETLINK_AUDIT)", want: unix.EINVAL, discriminating: true,
			run: socketProbe(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT)},
		{name: "socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)", want: unix.EPERM, discriminating: true,
			run: socketProbe(unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT)},
		{name: "socketpair(AF_UNIX)", run: func() unix.Errno {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return errnoOf(err)
			}
			unix.Close(fds[0])
			unix.Close(fds[1])
			return 0
		}},
		{name: "ioctl(TIOCSTI)", want: unix.EPERM, discriminating: true, run: ioctlProbe(unix.TIOCSTI)},
		{name: "ioctl(1<<32|TIOCSTI)", want: unix.EPERM, discriminating: true, run: ioctlProbe(1<<32 | unix.TIOCSTI)},
		{name: "ioctl(TIOCLINUX)", want: unix.EPERM, discriminating: true, run: ioctlProbe(unix.TIOCLINUX)},
		{name: "ioctl(TCGETS)", want: unix.ENOTTY, run: ioctlProbe(unix.TCGETS)},
		{name: "personality(query)", run: func() unix.Errno { return sys(unix.SYS_PERSONALITY, 0xffffffff) }},
		{name: "personality(ADDR_NO_RANDOMIZE)", want: unix.EPERM, discriminating: true, run: func() unix.Errno {
			return sys(unix.SYS_PERSONALITY, 0x0040000) // ADDR_NO_RANDOMIZE
		}},
	}
}

// TestKernelEnforcesPolicy installs the default filter in a child and
// checks the kernel's answers to a set of system calls. For calls marked
// discriminating it also checks that the same call without the filter gets
// a different answer, so that a filter that does nothing cannot pass.
func TestKernelEnforcesPolicy(t *testing.T) {
	requireNative(t)
	baseline := runProbes(t, "probe-baseline")
	filtered := runProbes(t, "probe-filtered")
	for _, p := range probes() {
		t.Run(p.name, func(t *testing.T) {
			got, ok := filtered[p.name]
			if !ok {
				t.Fatal("no result from the filtered child")
			}
			if unix.Errno(got) != p.want {
				t.Errorf("with filter: got %s, want %s", errnoString(unix.Errno(got)), errnoString(p.want))
			}
			if !p.discriminating {
				return
			}
			base, ok := baseline[p.name]
			if !ok {
				t.Fatal("no result from the unfiltered child")
			}
			if unix.Errno(base) == p.want {
				t.Errorf("without filter the kernel also returns %s: the probe cannot tell whether the filter acted", errnoString(p.want))
			}
		})
	}
}

// TestKernelKillsX32 checks that an x32 syscall kills the process with
// SIGSYS, while without the filter the same call returns normally.
func TestKernelKillsX32(t *testing.T) {
	requireNative(t)
	out, state := runChild(t, "x32-baseline")
	if !state.Success() {
		t.Fatalf("without filter: child ended with %v (output %q), want a normal exit", state, out)
	}
	out, state = runChild(t, "x32-filtered")
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("with filter: child ended with %v (output %q), want killed by SIGSYS", state, out)
	}
}

// TestKernelWorkload checks that threads, fork and exec keep working under
// the filter and that TSYNC covers threads created before Install.
func TestKernelWorkload(t *testing.T) {
	requireNative(t)
	out, state := runChild(t, "workload")
	if !state.Success() {
		t.Fatalf("child: %v, output %q", state, out)
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	for _, check := range workloadChecks {
		if msg, ok := res[check]; !ok || msg != "" {
			t.Errorf("%s: %s", check, msg)
		}
	}
}

func TestInstallRequiresNoNewPrivs(t *testing.T) {
	requireNative(t)
	out, state := runChild(t, "no-nnp")
	if !state.Success() {
		t.Fatalf("child: %v, output %q", state, out)
	}
	if strings.HasPrefix(out, "skip:") {
		t.Skip(strings.TrimSpace(out))
	}
	if !strings.Contains(out, "errors.Is(err, ErrNoNewPrivs)=true") {
		t.Errorf("Install without no_new_privs: got %q, want ErrNoNewPrivs", strings.TrimSpace(out))
	}
}

func TestInstallRejectsBadLength(t *testing.T) {
	// Both cases fail before any system call, so this is safe in-process.
	for _, n := range []int{0, bpfMaxInsns + 1} {
		if err := Install(make([]unix.SockFilter, n)); err == nil {
			t.Errorf("Install of %d instructions: got nil error, want one", n)
		}
	}
}
