// Command probe runs inside a sandbox and attempts operations the sandbox
// must refuse, printing one JSON object: operation name → "ok" or the errno
// name. The tests compare it with what the policy promises.
package main

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func result(err error) string {
	if err == nil {
		return "ok"
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

func raw(trap uintptr, a ...uintptr) error {
	var args [6]uintptr
	copy(args[:], a)
	_, _, e := unix.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
	if e != 0 {
		return e
	}
	return nil
}

// ignoreSignal sets a signal's disposition to SIG_IGN with a raw
// rt_sigaction (the Go runtime leaves signal 32 alone, so it stays ignored
// across exec, as a launcher may leave it).
func ignoreSignal(sig int) error {
	act := struct {
		handler, flags, restorer, mask uint64
	}{handler: 1} // SIG_IGN
	return raw(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8)
}

func main() {
	// probe ignore-signal-exec PROGRAM ARGS...: exec PROGRAM with signal
	// 32 ignored (what the tests' launcher of soulbox does).
	if len(os.Args) > 2 && os.Args[1] == "ignore-signal-exec" {
		if err := ignoreSignal(32); err != nil {
			os.Stderr.WriteString("probe: ignore signal 32: " + err.Error() + "\n")
			os.Exit(2)
		}
		err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
		os.Stderr.WriteString("probe: exec: " + err.Error() + "\n")
		os.Exit(2)
	}
	// probe rusage PROGRAM ARGS...: run PROGRAM, then print its maximum
	// resident set size on stderr as "maxrss=BYTES". Go starts children
	// with vfork, and the kernel records the parent's memory high-water
	// mark in the child's at exec; from this small process that floor is
	// a few MB, not the test binary's.
	if len(os.Args) > 2 && os.Args[1] == "rusage" {
		attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}}
		pid, err := syscall.ForkExec(os.Args[2], os.Args[2:], attr)
		if err != nil {
			os.Stderr.WriteString("probe: " + err.Error() + "\n")
			os.Exit(2)
		}
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		for {
			_, err = syscall.Wait4(pid, &ws, 0, &ru)
			if err != syscall.EINTR {
				break
			}
		}
		os.Stderr.WriteString("maxrss=" + strconv.FormatInt(ru.Maxrss<<10, 10) + "\n")
		os.Exit(ws.ExitStatus())
	}
	out := map[string]string{}
	out["mount_tmpfs"] = result(unix.Mount("none", "/tmp", "tmpfs", 0, ""))
	out["umount_proc"] = result(unix.Unmount("/proc", unix.MNT_DETACH))
	out["unshare_user"] = result(unix.Unshare(unix.CLONE_NEWUSER))
	out["unshare_net"] = result(unix.Unshare(unix.CLONE_NEWNET))
	out["setns"] = result(raw(unix.SYS_SETNS, 0, 0))
	out["chroot"] = result(unix.Chroot("/tmp"))
	out["pivot_root"] = result(unix.PivotRoot("/tmp", "/tmp"))
	out["ptrace_attach_init"] = result(raw(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1))
	out["ptrace_traceme"] = result(raw(unix.SYS_PTRACE, unix.PTRACE_TRACEME))
	out["process_vm_readv"] = result(raw(unix.SYS_PROCESS_VM_READV, 1, 0, 0, 0, 0, 0))
	out["keyctl"] = result(raw(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, ^uintptr(2), 0))
	out["add_key"] = result(raw(unix.SYS_ADD_KEY, 0, 0, 0, 0, 0))
	out["bpf"] = result(raw(unix.SYS_BPF, 0, 0, 0))
	out["perf_event_open"] = result(raw(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0, 0, 0))
	out["userfaultfd"] = result(raw(unix.SYS_USERFAULTFD, 0))
	out["io_uring_setup"] = result(raw(unix.SYS_IO_URING_SETUP, 1, 0))
	out["kexec_load"] = result(raw(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0))
	out["init_module"] = result(raw(unix.SYS_INIT_MODULE, 0, 0, 0))
	out["reboot"] = result(raw(unix.SYS_REBOOT, 0, 0, 0, 0))
	out["swapon"] = result(raw(unix.SYS_SWAPON, 0, 0))
	out["acct"] = result(raw(unix.SYS_ACCT, 0))
	out["open_by_handle_at"] = result(raw(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0))
	out["socket_raw"] = result(sock(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP))
	out["socket_packet"] = result(sock(unix.AF_PACKET, unix.SOCK_RAW, 0))
	out["socket_vsock"] = result(sock(unix.AF_VSOCK, unix.SOCK_STREAM, 0))
	out["socket_netlink_audit"] = result(sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT))
	out["socket_netlink_uevent"] = result(sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_KOBJECT_UEVENT))
	out["socket_tcp"] = result(sock(unix.AF_INET, unix.SOCK_STREAM, 0))
	out["socket_unix"] = result(sock(unix.AF_UNIX, unix.SOCK_STREAM, 0))
	out["socket_netlink_route"] = result(sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE))
	c := byte('x')
	out["ioctl_tiocsti"] = result(raw(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c))))
	out["ioctl_tiocsti_high_bits"] = result(raw(unix.SYS_IOCTL, 0, 1<<32|unix.TIOCSTI, uintptr(unsafe.Pointer(&c))))
	out["kill_all"] = result(syscall.Kill(-1, 0))
	out["write_proc_sys"] = result(os.WriteFile("/proc/sys/kernel/domainname", []byte("x"), 0))
	out["open_init_exe_write"] = result(openW("/proc/1/exe"))
	out["read_init_root"] = result(readDir("/proc/1/root/"))
	out["sethostname"] = result(unix.Sethostname([]byte("x")))
	out["unknown_syscall"] = result(raw(1000))
	b, _ := json.Marshal(out)
	os.Stdout.Write(append(b, '\n'))
}

func sock(domain, typ, proto int) error {
	fd, err := unix.Socket(domain, typ, proto)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func openW(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
	}
	return unwrap(err)
}

func readDir(p string) error {
	_, err := os.ReadDir(p)
	return unwrap(err)
}

func unwrap(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
