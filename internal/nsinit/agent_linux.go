package nsinit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/agent/process"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// AgentConfig configures the agent of a long-lived sandbox.
type AgentConfig struct {
	ListenFD int      // an inherited listening socket whose path only the host sees
	Env      []string // base environment of the processes it starts
	Dir      string   // their default working directory
}

// serveAgent serves the agent API until it fails; it returns only an error.
func serveAgent(cfg Config) error {
	r := &reaper{waiters: map[int]chan syscall.WaitStatus{}}
	go r.run()
	procs := process.New(process.Config{
		Env:    cfg.Agent.Env,
		Dir:    cfg.Agent.Dir,
		User:   lookupUser,
		Waiter: r,
	})
	ln, err := net.FileListener(os.NewFile(uintptr(cfg.Agent.ListenFD), "agent"))
	if err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(procs.Handler())
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

// reaper is the only place the agent (PID 1) waits for children: it reaps
// every child, including orphans re-parented to it, and hands each process
// the service started its wait status.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

var _ process.Waiter = (*reaper)(nil)

// Launch implements process.Waiter. The lock is held across start, so a
// child that exits at once is not mistaken for an orphan.
func (r *reaper) Launch(start func() (int, error)) (func() syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return func() syscall.WaitStatus { return <-ch }, nil
}

func (r *reaper) run() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	for range sigs {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			r.mu.Lock()
			if ch, ok := r.waiters[pid]; ok {
				ch <- syscall.WaitStatus(ws)
				delete(r.waiters, pid)
			}
			r.mu.Unlock()
		}
	}
}
