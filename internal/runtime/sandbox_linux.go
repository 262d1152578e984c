package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/agent/server"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// Sandbox is a long-lived sandbox: its init serves the agent API on a
// socket whose path only the host sees. Kill ends it and releases every
// resource. A Sandbox is safe for concurrent use.
type Sandbox struct {
	ID     string
	socket string

	sb       *sandbox
	pidMu    sync.RWMutex // guards pidfd's closing (DialPort reads it)
	pidfd    int          // -1 once closed
	handle   Handle
	done     chan struct{} // closed when the init has exited
	killOnce sync.Once
	killErr  error

	clients [2]struct {
		once sync.Once
		c    *http.Client
	}
	portOnce sync.Once
	portT    *http.Transport
	stall    cpuStall
}

// Start creates a long-lived sandbox with the spec's limits; Argv, Stdin,
// Stdout and Stderr are unused, and its wall and CPU-time limits are left
// to the caller (the daemon's timeouts).
func (r *Runtime) Start(ctx context.Context, s Spec) (_ *Sandbox, retErr error) {
	if len(s.Argv) == 0 {
		s.Argv = []string{"agent"} // only to pass validation
	}
	if err := r.Validate(&s); err != nil {
		return nil, err
	}
	sb := &sandbox{rt: r, spec: s, id: newID(), lastPhase: time.Now(), keepAlive: true}
	defer func() {
		if retErr != nil {
			sb.release()
		}
	}()
	if err := sb.prepare(); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.cfg.DataDir, "sandboxes", sb.id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox dir: %w", err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(dir)
		}
	}()
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	lf, err := ln.File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("agent socket: %w", err)
	}
	sb.files = append(sb.files, lf)
	exe, err := os.Open(r.cfg.AgentExe)
	if err != nil {
		return nil, fmt.Errorf("open agent binary: %w", err)
	}
	sb.files = append(sb.files, exe)
	listenFD := sb.passFD(lf)
	// The agent starts tenant processes in the nested tenant cgroup (see
	// cgroupLimits) from a thread it moves there.
	tenant, err := sb.cg.TenantFiles(int(sb.ids.HostID))
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	sb.files = append(sb.files, tenant...)
	acfg := server.Config{ListenFD: listenFD, Env: withoutHome(sb.cfg.Env), Dir: rootfs.UserHome}
	for _, f := range tenant {
		acfg.TenantCgroupFDs = append(acfg.TenantCgroupFDs, sb.passFD(f))
	}
	agentCfg, err := json.Marshal(acfg)
	if err != nil {
		return nil, err
	}
	// The uid-range lock (the first passed descriptor) goes on into the
	// agent, so the range stays reserved for the sandbox's whole life; so
	// does the hold on its template's image, if any.
	keep := append([]int{nsinit.ControlFD + 1}, acfg.TenantCgroupFDs...)
	if sb.imageFD > 0 {
		keep = append(keep, sb.imageFD)
	}
	sb.cfg.Agent = &nsinit.AgentConfig{ExeFD: sb.passFD(exe), ListenFD: listenFD, KeepFDs: keep, Config: agentCfg}
	sb.cfg.Argv = nil

	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	// The agent's own diagnostics (not tenant output) go to a host-side log.
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	ctlParent, ctlChild, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer ctlParent.Close()
	pid, pidfd, err := sb.spawn(devnull, logf, logf, ctlChild)
	ctlChild.Close()
	if err != nil {
		return nil, err
	}
	box := &Sandbox{ID: sb.id, socket: sock, sb: sb, pidfd: pidfd, done: make(chan struct{}),
		handle: Handle{ID: sb.id, Slot: sb.ids.Slot, Pid: pid}}
	// The init is our child and has not been reaped, so pid is still it.
	if box.handle.StartTime, err = startTime(pid); err != nil {
		box.Kill()
		return nil, fmt.Errorf("sandbox start time: %w", err)
	}
	exited := exitWatch(pidfd)
	go func() {
		exited()
		reap(pid)
		close(box.done)
	}()
	if err := sb.attachNet(pid); err != nil {
		box.Kill()
		return nil, err
	}
	box.handle.Egress = sb.netAttached
	if err := sendConfig(ctlParent, sb.cfg); err != nil {
		box.Kill()
		return nil, err
	}
	events := make(chan nsinit.Event, 2)
	go readEvents(ctlParent, events)
	select {
	case ev := <-events:
		if ev.Kind != nsinit.EventStarted {
			box.Kill()
			if ev.Kind == "" {
				return nil, sb.deathError()
			}
			return nil, fmt.Errorf("sandbox set-up failed: %s", ev.Error)
		}
	case <-ctx.Done():
		box.Kill()
		return nil, ctx.Err()
	}
	sb.trace("started")
	// The init has its descriptors; the host keeps only the pidfd (and
	// the cgroup), so a live sandbox costs the daemon one descriptor.
	sb.closeFiles()
	return box, nil
}

// Dial connects to the sandbox's agent.
func (b *Sandbox) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", b.socket)
}

// HTTPClient returns a client whose every request goes to the agent,
// over HTTP/1.1 or unencrypted HTTP/2 (for gRPC); use any host in URLs.
// The client (and its connection pool) is made once per sandbox.
func (b *Sandbox) HTTPClient(h2c bool) *http.Client {
	i := 0
	if h2c {
		i = 1
	}
	c := &b.clients[i]
	c.once.Do(func() {
		t := &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return b.Dial(ctx) },
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		}
		if h2c {
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			t.Protocols = &p
		}
		c.c = &http.Client{Transport: t}
	})
	return c.c
}

// agentLogMax is how much of the agent's log AgentLog returns.
const agentLogMax = 4 << 10

// AgentLog returns what the agent last said on its log (its stderr: a Go
// runtime crash, a failed set-up), or why it cannot be read.
func (b *Sandbox) AgentLog() string {
	f, err := os.Open(filepath.Join(filepath.Dir(b.socket), "agent.log"))
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	// The log is the agent's stderr: read its last 1 MiB at most.
	fi, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(0, fi.Size()-(1<<20))
	buf, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return err.Error()
	}
	return CrashExcerpt(buf, agentLogMax)
}

// CrashExcerpt is at most max bytes of a Go program's stderr that say why
// it ended: from its last "fatal error:", "panic:" or "runtime:" line when
// it crashed (what follows is a goroutine dump), else its end.
func CrashExcerpt(log []byte, max int) string {
	start := len(log) - min(len(log), max)
	for _, mark := range []string{"\nruntime: ", "\nfatal error: ", "\npanic: "} {
		if i := bytes.LastIndex(log, []byte(mark)); i >= 0 {
			start = i + 1
			break
		}
	}
	return strings.TrimSpace(string(log[start:min(len(log), start+max)]))
}

// Done is closed when the sandbox's init has exited.
func (b *Sandbox) Done() <-chan struct{} { return b.done }

// Kill ends every process of the sandbox and releases its resources. It
// is idempotent.
func (b *Sandbox) Kill() error {
	b.killOnce.Do(func() {
		if err := killInit(b.pidfd, b.sb.cg); err != nil && !errors.Is(err, unix.ESRCH) {
			b.killErr = fmt.Errorf("kill sandbox %s: %w", b.ID, err)
		}
		// A frozen (paused) init would not act on the signal until thawed.
		b.sb.cg.Thaw()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			b.killErr = errors.Join(b.killErr, fmt.Errorf("sandbox %s did not exit", b.ID))
		}
		b.pidMu.Lock()
		unix.Close(b.pidfd)
		b.pidfd = -1
		b.pidMu.Unlock()
		b.portOnce.Do(func() {})
		if b.portT != nil {
			b.portT.CloseIdleConnections()
		}
		for i := range b.clients {
			b.clients[i].once.Do(func() {})
			if c := b.clients[i].c; c != nil {
				c.CloseIdleConnections()
			}
		}
		b.sb.release()
		if err := os.RemoveAll(filepath.Dir(b.socket)); err != nil {
			b.killErr = errors.Join(b.killErr, err)
		}
	})
	return b.killErr
}

// withoutHome drops HOME, which the agent sets per user.
func withoutHome(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "HOME=") {
			out = append(out, kv)
		}
	}
	return out
}
