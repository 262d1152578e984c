//go:build linux

package seccomp

import "golang.org/x/sys/unix"

// cloneNamespaceFlags are the clone(2) flags that create namespaces.
// CLONE_NEWTIME (0x80) is deliberately absent: in clone(2) that bit is part
// of the exit-signal byte, and the kernel only accepts it via clone3 and
// unshare, both of which are refused anyway.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Default returns the policy applied to every process in a SoulBox
// sandbox. It is an allowlist: system calls it does not name fail with
// ENOSYS, so C libraries and language runtimes take the same fallback path
// they take on an older kernel. Calls that would widen the kernel attack
// surface or escape the sandbox's namespaces fail with EPERM.
//
// Each call returns a fresh Policy that the caller may modify.
func Default() Policy {
	eperm := Errno(unix.EPERM)
	return Policy{
		Default: Errno(unix.ENOSYS),
		Rules: []Rule{
			{Action: Allow, Names: []string{ // files, directories, metadata
				"read", "write", "open", "openat", "openat2", "creat", "close", "close_range",
				"stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
				"lseek", "pread64", "pwrite64", "readv", "writev",
				"preadv", "pwritev", "preadv2", "pwritev2",
				"access", "faccessat", "faccessat2",
				"dup", "dup2", "dup3", "fcntl", "flock",
				"fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
				"truncate", "ftruncate", "fallocate", "readahead", "fadvise64",
				"getdents", "getdents64", "getcwd", "chdir", "fchdir",
				"rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
				"link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat",
				"readlink", "readlinkat", "mknod", "mknodat",
				"chmod", "fchmod", "fchmodat", "fchmodat2",
				"chown", "fchown", "lchown", "fchownat", "umask",
				"utime", "utimes", "utimensat", "futimesat",
				"setxattr", "lsetxattr", "fsetxattr", "setxattrat",
				"getxattr", "lgetxattr", "fgetxattr", "getxattrat",
				"listxattr", "llistxattr", "flistxattr", "listxattrat",
				"removexattr", "lremovexattr", "fremovexattr", "removexattrat",
				"file_getattr", "file_setattr",
				"copy_file_range", "sendfile", "splice", "tee", "vmsplice",
				"memfd_create", "cachestat",
				"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
			}},
			{Action: Allow, Names: []string{ // waiting for events, classic AIO
				"pipe", "pipe2", "select", "pselect6", "poll", "ppoll",
				"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
				"eventfd", "eventfd2", "signalfd", "signalfd4",
				"timerfd_create", "timerfd_settime", "timerfd_gettime",
				"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
			}},
			{Action: Allow, Names: []string{ // memory
				"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
				"mlock", "mlock2", "munlock", "mlockall", "munlockall", "membarrier",
				"mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node",
				"pkey_mprotect", "pkey_alloc", "pkey_free", "map_shadow_stack", "mseal",
			}},
			{Action: Allow, Names: []string{ // processes and threads (clone is below)
				"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
				"kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal",
				"getpid", "gettid", "getppid", "getpgrp", "getpgid", "setpgid", "getsid", "setsid",
				"set_tid_address", "set_robust_list", "get_robust_list", "rseq",
				"futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
				"arch_prctl", "set_thread_area", "get_thread_area", "prctl",
				"restart_syscall", "uname", "getcpu", "getrandom",
			}},
			{Action: Allow, Names: []string{ // signals
				"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
				"rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend",
				"sigaltstack", "pause",
			}},
			{Action: Allow, Names: []string{ // clocks and timers (reading only)
				"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
				"gettimeofday", "time", "times", "getitimer", "setitimer", "alarm",
				"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
			}},
			{Action: Allow, Names: []string{ // credentials (checked by the kernel inside the user namespace)
				"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
				"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
				"setfsuid", "setfsgid", "setgroups", "capget", "capset",
			}},
			{Action: Allow, Names: []string{ // scheduling and resource limits
				"sched_yield", "sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
				"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
				"sched_setaffinity", "sched_getaffinity", "sched_setattr", "sched_getattr",
				"getpriority", "setpriority", "ioprio_get", "ioprio_set",
				"getrlimit", "setrlimit", "prlimit64", "getrusage", "sysinfo",
			}},
			{Action: Allow, Names: []string{ // sockets once created (socket is below)
				"connect", "accept", "accept4", "bind", "listen", "shutdown",
				"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
				"getsockname", "getpeername", "setsockopt", "getsockopt",
			}},
			{Action: Allow, Names: []string{ // System V and POSIX IPC (confined by the IPC namespace)
				"shmget", "shmat", "shmctl", "shmdt",
				"semget", "semop", "semctl", "semtimedop",
				"msgget", "msgsnd", "msgrcv", "msgctl",
				"mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
			}},
			{Action: Allow, Names: []string{ // self-restriction: can only take privileges away
				"seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
			}},

			// clone: threads and fork, but no new namespaces. The kernel
			// reads only the low 32 bits of the flags.
			{Names: []string{"clone"}, Action: eperm, Conds: []ArgCond{
				{Index: 0, Op: MaskedNe, Mask: cloneNamespaceFlags, Value: 0, Low32: true},
			}},
			{Names: []string{"clone"}, Action: Allow},
			// clone3 passes its flags in memory, which BPF cannot read.
			// ENOSYS makes glibc, musl and Go fall back to clone.
			{Names: []string{"clone3"}, Action: Errno(unix.ENOSYS)},

			// socket, socketpair: Unix, IPv4, IPv6 and rtnetlink only.
			{Names: []string{"socket", "socketpair"}, Action: Allow, Conds: []ArgCond{
				{Index: 0, Op: Eq, Value: unix.AF_UNIX, Low32: true},
			}},
			{Names: []string{"socket", "socketpair"}, Action: Allow, Conds: []ArgCond{
				{Index: 0, Op: Eq, Value: unix.AF_INET, Low32: true},
			}},
			{Names: []string{"socket", "socketpair"}, Action: Allow, Conds: []ArgCond{
				{Index: 0, Op: Eq, Value: unix.AF_INET6, Low32: true},
			}},
			{Names: []string{"socket", "socketpair"}, Action: Allow, Conds: []ArgCond{
				{Index: 0, Op: Eq, Value: unix.AF_NETLINK, Low32: true},
				{Index: 2, Op: Eq, Value: unix.NETLINK_ROUTE, Low32: true},
			}},
			// NETLINK_AUDIT gets EINVAL, what the kernel returns for an
			// unknown protocol: shadow-utils (useradd, groupadd) aborts on
			// any other error from libaudit's audit_open().
			{Names: []string{"socket", "socketpair"}, Action: Errno(unix.EINVAL), Conds: []ArgCond{
				{Index: 0, Op: Eq, Value: unix.AF_NETLINK, Low32: true},
				{Index: 2, Op: Eq, Value: unix.NETLINK_AUDIT, Low32: true},
			}},
			{Names: []string{"socket", "socketpair"}, Action: eperm},

			// ioctl: no injecting input into, or reconfiguring, a terminal
			// the sandbox shares. The request is an unsigned int.
			{Names: []string{"ioctl"}, Action: eperm, Conds: []ArgCond{
				{Index: 1, Op: Eq, Value: unix.TIOCSTI, Low32: true},
			}},
			{Names: []string{"ioctl"}, Action: eperm, Conds: []ArgCond{
				{Index: 1, Op: Eq, Value: unix.TIOCLINUX, Low32: true},
			}},
			{Names: []string{"ioctl"}, Action: Allow},

			// personality: the values runtimes use (PER_LINUX, PER_LINUX32,
			// UNAME26 and the 0xffffffff query), nothing that weakens ASLR.
			allowPersona(0x0),
			allowPersona(0x8),
			allowPersona(0x20000),
			allowPersona(0x20008),
			allowPersona(0xffffffff),
			{Names: []string{"personality"}, Action: eperm},

			{Action: eperm, Names: []string{ // mounts, namespaces, root changes
				"mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
				"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "open_tree_attr",
				"move_mount", "mount_setattr",
			}},
			{Action: eperm, Names: []string{ // reaching into other processes
				"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
				"kcmp", "pidfd_getfd",
			}},
			{Action: eperm, Names: []string{ // large kernel attack surface
				"bpf", "perf_event_open", "userfaultfd",
				"io_uring_setup", "io_uring_enter", "io_uring_register",
				"keyctl", "add_key", "request_key",
				"fanotify_init", "fanotify_mark", "open_by_handle_at", "name_to_handle_at",
				"lookup_dcookie", "migrate_pages", "move_pages",
			}},
			{Action: eperm, Names: []string{ // host administration
				"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
				"reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd",
				"nfsservctl", "vhangup", "uselib", "sethostname", "setdomainname",
				"iopl", "ioperm", "modify_ldt",
				"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
			}},
		},
	}
}

func allowPersona(persona uint64) Rule {
	return Rule{Names: []string{"personality"}, Action: Allow, Conds: []ArgCond{
		{Index: 0, Op: Eq, Value: persona, Low32: true},
	}}
}
