// Package server is the agent of a long-lived sandbox: the process the
// sandbox init execs as PID 1 once the sandbox is set up. It serves the
// agent API (the envd-compatible process and filesystem services and the
// /files API) on a listening socket inherited from the host, and is the
// sandbox's only reaper.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/agent/filesystem"
	"github.com/soulbox-dev/soulbox/internal/agent/process"
	"github.com/soulbox-dev/soulbox/internal/caps"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// Arg0 is the argv[0] under which the soulbox binary runs as the agent.
const Arg0 = "soulbox-agent"

// ConfigEnv is the environment variable that carries the agent's Config
// (JSON) from the init across the exec.
const ConfigEnv = "SOULBOX_AGENT"

// Config configures the agent.
type Config struct {
	ListenFD int // an inherited listening socket whose path only the host sees
	// TenantCgroupFDs are the files through which a thread moves itself
	// into the nested tenant cgroup (see cgroup.Cgroup.TenantFiles);
	// none means processes start in the agent's cgroup.
	TenantCgroupFDs []int
	Env             []string // base environment of the processes it starts
	Dir             string   // their default working directory
}

// PidsReserve is how many pids the runtime gives a long-lived sandbox's
// cgroup beyond the tenant's limit: the agent's own threads (and the
// init's slot). Tenant processes live in a nested cgroup limited to the
// tenant's pids (see tenantCgroup), so a fork bomb cannot take them; the
// Go runtime treats a thread it cannot create as fatal ("newosproc").
// The agent's need is bounded: GOMAXPROCS 2, starts are serialised, and
// file operations that hold a thread are limited (fsid.MaxLocked).
const PidsReserve = 64

// MemoryReserve is the memory the runtime gives a long-lived sandbox's
// cgroup beyond the tenant's limit where the tenant's memory can be
// accounted apart (cgroup v1): the agent's own, including the output
// history it keeps (at most 4 MiB per process and
// process.DefaultOutputBudget in all).
const MemoryReserve = 64 << 20

// Main runs the agent; it never returns.
func Main() {
	var cfg Config
	if err := json.Unmarshal([]byte(os.Getenv(ConfigEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soulbox-agent: bad configuration:", err)
		os.Exit(2)
	}
	os.Unsetenv(ConfigEnv)
	if err := serve(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soulbox-agent:", err)
	}
	os.Exit(1)
}

// serve drops what the agent must not pass on and serves the agent API
// until it fails; it returns only an error.
func serve(cfg Config) error {
	// The init kept CAP_SETUID, CAP_SETGID and CAP_KILL in its bounding set
	// so they survive the exec; the agent starts processes from any of its
	// threads, so it empties the bounding set on every one of them.
	if err := caps.DropBounding(0, true); err != nil {
		return err
	}
	// CAP_SETPCAP was left by the init only for the line above.
	if err := caps.Set(caps.Of(unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_KILL)); err != nil {
		return err
	}
	// Descriptors inherited from the init (the listener, the host's uid-range
	// lock) must not reach the processes the agent starts.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close-on-exec: %w", err)
	}
	// Only the host ends the agent (SIGKILL through its pidfd or cgroup).
	// The signals are caught and dropped rather than ignored: an ignored
	// signal stays ignored across exec, in every process the agent starts.
	// SIGQUIT, which only the host can send (tenant processes run as
	// another uid without capabilities), writes every goroutine's stack to
	// the agent's log, for diagnosis, and the agent goes on.
	drop := make(chan os.Signal, 1)
	signal.Notify(drop, unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT)
	go func() {
		for sig := range drop {
			if sig == unix.SIGQUIT {
				buf := make([]byte, 4<<20)
				os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			}
		}
	}()
	// The Go heap's soft limit: well inside MemoryReserve, so the
	// collector works harder before the agent could meet its cgroup's
	// limit (output history is bounded by process.DefaultOutputBudget).
	debug.SetMemoryLimit(MemoryReserve * 3 / 4)
	r := newReaper()
	if len(cfg.TenantCgroupFDs) > 0 {
		var enter []*os.File
		for _, fd := range cfg.TenantCgroupFDs {
			enter = append(enter, os.NewFile(uintptr(fd), "tenant cgroup fd "+strconv.Itoa(fd)))
		}
		r.tenant = newTenantCgroup(enter)
	}
	go r.run()
	procs := process.New(process.Config{
		Env:    cfg.Env,
		Dir:    cfg.Dir,
		User:   lookupUser,
		Waiter: r,
	})
	// The filesystem service acts as users through fsuid/fsgid alone, so
	// the agent must hold no supplementary groups (those inherited from the
	// host appear as nogroup but still count); syscall.Setgroups applies to
	// every thread.
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	files := filesystem.New(filesystem.Config{User: lookupFSUser})
	defer files.Close()
	ln, err := net.FileListener(os.NewFile(uintptr(cfg.ListenFD), "agent"))
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(procs.Handler())
	mux.Handle(files.Handler())
	mux.Handle(filesystem.FilesPath, files.FilesHandler())
	mux.HandleFunc("POST "+InitPath, initHandler(procs))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC and Connect over h2c
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: 30 * time.Second}
	return srv.Serve(ln)
}

// lookupUser maps a user name of the sandbox to the credentials and home
// its processes run with, from the sandbox's own /etc/passwd.
func lookupUser(name string) (process.User, error) {
	if name == rootfs.UserName {
		return process.User{Cred: &syscall.Credential{Uid: rootfs.UserUID, Gid: rootfs.UserGID, Groups: []uint32{}}, Home: rootfs.UserHome}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return process.User{}, errors.New("no such user in the sandbox")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return process.User{}, errors.New("the user has a non-numeric id")
	}
	return process.User{Cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, Home: u.HomeDir}, nil
}

// lookupFSUser is lookupUser for the filesystem service: the same user
// as the processes the service starts.
func lookupFSUser(name string) (filesystem.User, error) {
	u, err := lookupUser(name)
	if err != nil {
		return filesystem.User{}, err
	}
	return filesystem.User{UID: u.Cred.Uid, GID: u.Cred.Gid, Home: u.Home}, nil
}

// reaper is the only place the agent (PID 1) waits for children: it reaps
// every child, including orphans re-parented to it, and hands each process
// the service started its wait status.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	tenant  *tenantCgroup // where processes start; nil: the agent's cgroup
	sigs    chan os.Signal
}

// newReaper subscribes to SIGCHLD before any child can exist: a child that
// ends before the subscription leaves no trace but a zombie, and its
// waiter would wait forever (a command that never ended, about one in
// four runs of 100 sandboxes created at once, each running a command at
// once).
func newReaper() *reaper {
	r := &reaper{waiters: map[int]chan syscall.WaitStatus{}, sigs: make(chan os.Signal, 1)}
	signal.Notify(r.sigs, unix.SIGCHLD)
	return r
}

var _ process.Waiter = (*reaper)(nil)

// Launch implements process.Waiter. The lock is held across start, so a
// child that exits at once is not mistaken for an orphan.
func (r *reaper) Launch(start func() (int, error)) (func() syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := r.tenant.run(start)
	if err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return func() syscall.WaitStatus { return <-ch }, nil
}

// run reaps every child that has ended, then waits for the next SIGCHLD
// (signals coalesce: each one means "at least one more").
func (r *reaper) run() {
	for {
		r.reapEnded()
		<-r.sigs
	}
}

func (r *reaper) reapEnded() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		if ch, ok := r.waiters[pid]; ok {
			ch <- syscall.WaitStatus(ws)
			delete(r.waiters, pid)
		}
		r.mu.Unlock()
	}
}

// InitPath is where the host sets the environment of a sandbox taken from
// the warm pool (as envd's /init does).
const InitPath = "/init"

// InitRequest is the body of POST /init.
type InitRequest struct {
	EnvVars map[string]string `json:"envVars"`
}

func initHandler(procs *process.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req InitRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad init request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := procs.SetEnv(req.EnvVars); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
