// Package nsinit is the sandbox's init: the copy of the soulbox binary that
// the host-side runtime starts as PID 1 of a fresh set of namespaces.
//
// It reads its Config from the control socket, assembles the root file
// system, applies rlimits, drops every capability, sets no_new_privs,
// installs the seccomp filter last, then starts the tenant program as the
// unprivileged user in its own session and reaps every process until that
// program exits. It reports each step as an Event on the control socket.
//
// The init itself keeps uid 0 of the sandbox but holds no capabilities and
// runs under the same seccomp filter, so tenant code (uid 1000) can neither
// signal it nor read its memory or descriptors.
package nsinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/sigreset"

	"github.com/soulbox-dev/soulbox/internal/caps"
	"github.com/soulbox-dev/soulbox/internal/exebin"
	"github.com/soulbox-dev/soulbox/internal/execpath"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// Arg0 is the argv[0] under which the soulbox binary runs as the init.
const Arg0 = "soulbox-init"

// ControlFD is the descriptor number of the control socket in the init.
const ControlFD = 3

// maxConfig caps the configuration the init accepts.
const maxConfig = 4 << 20

// Rlimit is one resource limit applied to every process of the sandbox.
type Rlimit struct {
	Resource int
	Cur, Max uint64
}

// Config is sent by the host-side runtime to the init.
type Config struct {
	Layout  rootfs.Layout
	Argv    []string
	Env     []string
	Cwd     string
	Rlimits []Rlimit
	Seccomp []unix.SockFilter
	// CgroupTasks (cgroup v1 hosts) are descriptors of the sandbox
	// cgroup's "tasks" files, opened by the runtime; every thread of the
	// init writes "0" to them to move itself, then the init unshares its
	// cgroup namespace (see cgroup.Cgroup.TaskFiles).
	CgroupTasks []int
	// Collect, if set, asks for the files the program creates or
	// modifies under a directory (one-shot runs only).
	Collect *Collect
	// Agent, if set, makes the init exec the agent of a long-lived sandbox
	// once the sandbox is set up, instead of running Argv.
	Agent *AgentConfig
	// Worker, if set, makes the init run one program per Job it receives
	// once the sandbox is set up, instead of running Argv (worker_linux.go).
	Worker *WorkerConfig
}

// AgentConfig tells the init how to exec the agent.
type AgentConfig struct {
	ExeFD    int // the agent's executable (the soulbox binary), executed with execveat
	ListenFD int // the agent's listening socket, kept open across the exec
	// KeepFDs are also kept open across the exec: the uid-range lock,
	// which must be held for as long as the sandbox lives.
	KeepFDs []int
	Config  json.RawMessage // the agent's own configuration, passed through
}

// AgentArg0 and AgentConfigEnv must match internal/agent/server (this
// package does not import it, to keep the init small).
const (
	AgentArg0      = "soulbox-agent"
	AgentConfigEnv = "SOULBOX_AGENT"
)

// Event kinds reported by the init.
const (
	EventStarted = "started" // set up and the tenant program is running (Pid set); not sent for a worker's jobs
	EventError   = "error"   // set-up failed before the program ran (Error set)
	EventExit    = "exit"    // the tenant program ended (Status, DiskFull set)
	EventReady   = "ready"   // a worker is clean and waits for its next Job (Dirty set if it cannot be reused)
)

// Event is a message from the init to the runtime.
type Event struct {
	Kind     string `json:"kind"`
	Error    string `json:"error,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Status   int    `json:"status,omitempty"` // raw wait status of the tenant program
	DiskFull bool   `json:"disk_full,omitempty"`
	ExecErr  bool   `json:"exec_error,omitempty"` // the program could not be started
	Dirty    string `json:"dirty,omitempty"`      // why a worker cannot run another Job
	// WallMicros is a worker's measure of the program's wall time, from
	// its fork to its exit (exit events of workers).
	WallMicros int64 `json:"wall_us,omitempty"`
	// SetupMicros reports how long each set-up phase took (started events).
	SetupMicros map[string]int64 `json:"setup_us,omitempty"`
}

// Main is the init's entry point; it never returns.
//
// The caller must have locked the main goroutine to the main thread in an
// init function (see cmd/soulbox): the thread that sets up the sandbox is
// the thread that forks the program and the one /proc/1/status shows.
func Main() {
	ctl := os.NewFile(ControlFD, "control")
	send := func(ev Event) {
		b, _ := json.Marshal(ev)
		// The runtime treats a missing event as an internal error, so a
		// failed send needs no further handling here.
		ctl.Write(b)
	}
	ev := run(ctl)
	send(ev)
	if ev.Kind == EventError {
		os.Exit(1)
	}
	os.Exit(0)
}

func run(ctl *os.File) Event {
	buf := make([]byte, maxConfig)
	n, err := ctl.Read(buf)
	if err != nil {
		return Event{Kind: EventError, Error: "read config: " + err.Error()}
	}
	var cfg Config
	if err := json.Unmarshal(buf[:n], &cfg); err != nil {
		return Event{Kind: EventError, Error: "decode config: " + err.Error()}
	}
	buf = nil
	// Whatever the runner's launcher ignored would stay ignored in the
	// program (and, through the agent, in every command).
	if _, err := sigreset.ResetIgnored(); err != nil {
		return Event{Kind: EventError, Error: "reset signals: " + err.Error()}
	}
	tr := newTrace()
	var before snapshot
	pid, err := setupAndStart(&cfg, tr, &before)
	if err != nil {
		var se startError
		return Event{Kind: EventError, Error: err.Error(), ExecErr: errors.As(err, &se)}
	}
	b, _ := json.Marshal(Event{Kind: EventStarted, Pid: pid, SetupMicros: tr.phases})
	if _, err := ctl.Write(b); err != nil {
		// The runtime is gone; with nobody to report to, end the sandbox.
		return Event{Kind: EventError, Error: "report start: " + err.Error()}
	}
	if cfg.Agent != nil {
		// The agent serves until the sandbox is killed; its creator may
		// go away (a daemon restart) without ending it.
		return Event{Kind: EventError, Error: "exec agent: " + execAgent(cfg.Agent).Error()}
	}
	if cfg.Worker != nil {
		return serveJobs(ctl, cfg.Worker, cfg.Rlimits)
	}
	status := reap(pid)
	exit := Event{Kind: EventExit, Status: int(status), DiskFull: diskFull()}
	if cfg.Collect != nil {
		// Report the exit first: collecting is not the program's time.
		b, _ := json.Marshal(exit)
		if _, err := ctl.Write(b); err != nil {
			return Event{Kind: EventError, Error: "report exit: " + err.Error()}
		}
		collect(cfg.Collect, before)
		os.Exit(0)
	}
	return exit
}

type startError struct{ error }

// trace records the duration of each set-up phase.
type trace struct {
	last   time.Time
	phases map[string]int64
}

func newTrace() *trace { return &trace{last: time.Now(), phases: map[string]int64{}} }

func (t *trace) mark(phase string) {
	now := time.Now()
	t.phases[phase] = now.Sub(t.last).Microseconds()
	t.last = now
}

func setupAndStart(cfg *Config, tr *trace, before *snapshot) (int, error) {
	if len(cfg.Argv) == 0 && cfg.Agent == nil && cfg.Worker == nil {
		return 0, errors.New("no command")
	}
	if cfg.Worker != nil && (cfg.Agent != nil || cfg.Collect != nil) {
		return 0, errors.New("a worker neither execs an agent nor collects files")
	}
	if len(cfg.CgroupTasks) > 0 {
		// First, so the writable layer's pages are charged to the sandbox.
		if err := joinCgroups(cfg.CgroupTasks); err != nil {
			return 0, err
		}
		tr.mark("cgroup")
	}
	if err := unix.Sethostname([]byte(rootfs.Hostname)); err != nil {
		return 0, fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return 0, fmt.Errorf("loopback: %w", err)
	}
	if err := rootfs.Assemble(cfg.Layout); err != nil {
		return 0, fmt.Errorf("rootfs: %w", err)
	}
	tr.mark("rootfs")
	if err := unix.Chdir(cfg.Cwd); err != nil {
		return 0, fmt.Errorf("chdir %s: %w", cfg.Cwd, err)
	}
	for _, r := range cfg.Rlimits {
		// syscall.Setrlimit (not unix.Setrlimit) so that the Go runtime does
		// not restore its start-up RLIMIT_NOFILE in the child it forks.
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return 0, fmt.Errorf("setrlimit %d: %w", r.Resource, err)
		}
	}
	var path string
	if cfg.Agent == nil && cfg.Worker == nil {
		p, err := execpath.Look(cfg.Argv[0], cfg.Env)
		if err != nil {
			return 0, startError{err}
		}
		path = p
	}
	// The one-shot init keeps setuid/setgid only until it has started the
	// program. The agent needs them (and kill, to signal the processes it
	// starts as other users) for the sandbox's life: they stay in the
	// bounding set across the exec (root's permitted set after exec is its
	// bounding set, cut to the old permitted set by no_new_privs), and the
	// agent then empties the bounding set on all its threads.
	//
	// The bounding set is dropped on this thread only: the thread that
	// forks the program or execs the agent, whose sets they inherit. The
	// init's other threads keep no permitted, effective or inheritable
	// capability (caps.Set) and never exec, so dropping theirs (a stop of
	// the world per capability) would buy nothing on this hot path.
	keep := caps.Of(unix.CAP_SETUID, unix.CAP_SETGID)
	// Collecting the program's files needs to read them whatever their
	// modes: CAP_DAC_READ_SEARCH in the sandbox's user namespace, which
	// covers only files owned by the sandbox's own ids.
	var afterStart caps.Mask
	if cfg.Collect != nil && cfg.Agent == nil {
		afterStart = caps.Of(unix.CAP_DAC_READ_SEARCH)
		keep |= afterStart
	}
	if cfg.Worker != nil {
		// A worker starts programs for its whole life: setuid/setgid as
		// above; kill, to end what a program leaves behind (it runs as
		// another uid); sys_resource, to restore its own rlimits after
		// lowering them for each program (they are inherited). None of
		// them reaches a program (it runs as uid 1000 with no
		// capabilities); the bounding set is emptied as for a one-shot init.
		keep |= caps.Of(unix.CAP_KILL, unix.CAP_SYS_RESOURCE)
	}
	var bounding caps.Mask
	if cfg.Agent != nil {
		// CAP_SETPCAP only so the agent can empty its own bounding set;
		// it drops it right after.
		keep |= caps.Of(unix.CAP_KILL, unix.CAP_SETPCAP)
		bounding = keep
	}
	if err := caps.DropBounding(bounding, false); err != nil {
		return 0, err
	}
	if err := caps.Set(keep); err != nil {
		return 0, err
	}
	// no_new_privs on this thread; installing the filter with TSYNC sets
	// it on every other thread of the init too.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("no_new_privs: %w", err)
	}
	// Only 0-2 reach the program: the control socket and the uid-range
	// lock stay open in the init but are never inherited.
	if err := unix.CloseRange(ControlFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 0, fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	tr.mark("privileges")
	if err := installSeccomp(cfg.Seccomp); err != nil {
		return 0, err
	}
	tr.mark("seccomp")
	if cfg.Agent != nil || cfg.Worker != nil {
		return 0, nil
	}
	if cfg.Collect != nil {
		*before = takeSnapshot(cfg.Collect.Dir)
	}
	attr := &syscall.ProcAttr{
		Dir:   cfg.Cwd,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: rootfs.UserUID, Gid: rootfs.UserGID, Groups: []uint32{}},
		},
	}
	pid, err := syscall.ForkExec(path, cfg.Argv, attr)
	if err != nil {
		return 0, startError{fmt.Errorf("start %s: %w", cfg.Argv[0], err)}
	}
	tr.mark("spawn")
	if err := caps.Set(afterStart); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// joinCgroups moves every thread of the init into the sandbox's v1
// cgroups through the inherited "tasks" descriptors, then roots a new
// cgroup namespace there. Threads the runtime creates later are cloned
// from these and start in the same cgroups.
func joinCgroups(fds []int) error {
	zero := []byte("0")
	for _, fd := range fds {
		_, _, e := syscall.AllThreadsSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&zero[0])), 1)
		runtime.KeepAlive(zero)
		if e != 0 {
			return fmt.Errorf("join cgroup: %w", e)
		}
		unix.Close(fd)
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	return nil
}

// reap waits for every child until the tenant program exits, and returns
// its wait status. Orphans re-parented to the init are reaped as well.
func reap(main int) unix.WaitStatus {
	for {
		var ws unix.WaitStatus
		pid, err := wait4(-1, &ws, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid == main {
			return ws
		}
	}
}

// diskFull reports whether the writable layer is full, so the runtime can
// tell a program that failed on ENOSPC from any other failure.
func diskFull() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Bavail == 0
}

// execAgent replaces the init with the agent, executed from a descriptor
// so its path need not exist inside the sandbox. Only the listening socket
// and KeepFDs survive the exec (every other descriptor is close-on-exec).
func execAgent(a *AgentConfig) error {
	for _, fd := range append([]int{a.ListenFD}, a.KeepFDs...) {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("keep descriptor %d: %w", fd, err)
		}
	}
	return exebin.Execveat(a.ExeFD, []string{AgentArg0}, []string{"GOMAXPROCS=2", AgentConfigEnv + "=" + string(a.Config)})
}

// loopbackUp brings up lo in the sandbox's fresh network namespace (it
// starts down), so servers inside can listen on 127.0.0.1 and the daemon
// can reach them (exposed ports).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
