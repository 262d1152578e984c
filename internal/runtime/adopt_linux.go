package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/agent/server"
	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
)

// Handle identifies a live long-lived sandbox to another process: the
// daemon records it and, after a restart, adopts the sandbox with it.
type Handle struct {
	ID   string `json:"id"`
	Slot int    `json:"slot"` // uid-range slot (also in the cgroup's name)
	Pid  int    `json:"pid"`  // the sandbox's PID 1 (the agent), in the host's pid namespace
	// StartTime is the init's start time in clock ticks since boot
	// (/proc/PID/stat field 22): with Pid it names one process, never a
	// later process that reused the pid.
	StartTime uint64 `json:"start_time"`
	// Egress is set when the sandbox has a veth and rules (netsetup).
	Egress bool `json:"egress,omitempty"`
}

// Handle returns what a later process needs to adopt the sandbox.
func (b *Sandbox) Handle() Handle { return b.handle }

// ErrGone is returned by Adopt when the sandbox no longer exists.
var ErrGone = errors.New("sandbox is gone")

// Adopt takes over a live sandbox started by another process (an earlier
// daemon). It verifies that the recorded process is still the sandbox's
// init (same start time, inside the sandbox's cgroup) and that its agent
// socket exists; otherwise it returns ErrGone.
func (r *Runtime) Adopt(h Handle) (*Sandbox, error) {
	if err := validID(h.ID); err != nil || h.Pid <= 1 {
		return nil, fmt.Errorf("%w: bad handle", ErrGone)
	}
	name := cgName{kind: kindSandbox, instance: r.instance, slot: h.Slot, id: h.ID}.String()
	cg, err := r.cgroups.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%w: cgroup %s: %v", ErrGone, name, err)
	}
	pidfd, err := unix.PidfdOpen(h.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: pid %d: %v", ErrGone, h.Pid, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(pidfd)
		}
	}()
	// The pidfd pins the process: checks made after opening it are about
	// the same process the pidfd signals.
	if st, err := startTime(h.Pid); err != nil || st != h.StartTime {
		return nil, fmt.Errorf("%w: pid %d is another process", ErrGone, h.Pid)
	}
	procs, err := cg.Procs()
	if err != nil || !slices.Contains(procs, h.Pid) {
		return nil, fmt.Errorf("%w: pid %d is not in cgroup %s", ErrGone, h.Pid, name)
	}
	sock := filepath.Join(r.cfg.DataDir, "sandboxes", h.ID, "agent.sock")
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("%w: no agent socket", ErrGone)
	}
	if h.Egress && r.cfg.Net == nil {
		return nil, fmt.Errorf("sandbox %s has egress but this runtime has no network configuration", h.ID)
	}
	sb := &sandbox{rt: r, id: h.ID, cg: cg, keepAlive: true, released: false, netSlot: h.Slot, netAttached: h.Egress}
	box := &Sandbox{ID: h.ID, socket: sock, sb: sb, pidfd: pidfd, handle: h, done: make(chan struct{})}
	exited := exitWatch(pidfd)
	go func() {
		// Not our child: the exit is seen through the pidfd, and whoever
		// the init was re-parented to reaps it.
		exited()
		close(box.done)
	}()
	ok = true
	return box, nil
}

// exitWatch returns a function that waits until the process behind pidfd
// has exited, in the Go runtime's poller: a sandbox being waited for
// holds no thread. (A goroutine blocked in wait4 or poll(2) held an OS
// thread for the sandbox's whole life: a daemon with 50 idle sandboxes
// had 57 threads, now 8.) Call exitWatch while pidfd is open (it keeps a
// duplicate); the wait may run anywhere later.
func exitWatch(pidfd int) (wait func()) {
	fd, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return func() { waitPidfd(pidfd) }
	}
	// O_NONBLOCK (shared with pidfd: the same open file) makes os.NewFile
	// register the descriptor with the poller; on a pidfd it only changes
	// waitid(P_PIDFD), which nothing here uses.
	if err := unix.SetNonblock(fd, true); err != nil {
		return func() {
			waitPidfd(fd)
			unix.Close(fd)
		}
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	return func() {
		defer f.Close()
		rc, err := f.SyscallConn()
		if err == nil {
			err = rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd)) })
		}
		if err != nil {
			waitPidfd(int(f.Fd()))
		}
	}
}

// waitPidfd waits in poll(2) until the process behind pidfd has exited.
func waitPidfd(pidfd int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n > 0 {
			return
		}
	}
}

// startTime reads field 22 of /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func validID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("bad id")
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return errors.New("bad id")
		}
	}
	return nil
}

// Pause freezes every process of the sandbox (they use no CPU until
// Resume).
func (b *Sandbox) Pause() error { return b.sb.cg.Freeze() }

// Resume thaws a paused sandbox.
func (b *Sandbox) Resume() error { return b.sb.cg.Thaw() }

// Usage is a sandbox's resource use.
type Usage struct {
	cgroup.Stats
	DiskUsed, DiskTotal int64 // the writable layer, in bytes
	MemoryCache         int64 // page cache charged to the sandbox, in bytes
	// Network is the traffic of a sandbox with egress (nil without).
	Network *netsetup.Stats
}

// Usage reads the sandbox's cgroup counters and its writable layer's use.
func (b *Sandbox) Usage() (Usage, error) {
	st, err := b.sb.cg.Stats()
	if err != nil {
		return Usage{}, err
	}
	u := Usage{Stats: st}
	if mc, err := b.sb.cg.MemoryCache(); err == nil {
		u.MemoryCache = mc
	}
	// statfs only: the path is the init's root, which the kernel resolves
	// without following anything the tenant controls.
	var fs unix.Statfs_t
	if unix.Statfs("/proc/"+strconv.Itoa(b.handle.Pid)+"/root", &fs) == nil {
		u.DiskTotal = int64(fs.Blocks) * fs.Bsize
		u.DiskUsed = int64(fs.Blocks-fs.Bfree) * fs.Bsize
	}
	if b.sb.netAttached {
		if st, err := b.sb.rt.cfg.Net.Stats(b.sb.netSlot); err == nil {
			u.Network = &st
		}
	}
	return u, nil
}

// LiveSandboxes lists the long-lived sandboxes of this data directory
// alive on this host (their cgroups exist and their uid slot is held),
// whoever started them. Pid and StartTime are not filled in.
func (r *Runtime) LiveSandboxes() ([]Handle, error) {
	names, err := r.cgroups.List()
	if err != nil {
		return nil, err
	}
	var out []Handle
	for _, name := range names {
		n, ok := parseCgroupName(name)
		if !ok || n.kind != kindSandbox || n.instance != r.instance {
			continue // a one-shot run, or another data directory's sandbox
		}
		slot, id := n.slot, n.id
		held, err := r.ids.Reacquire(slot)
		if err == nil {
			// Dead (e.g. it died after the start-up sweep): remove its
			// cgroup now, holding the slot so no new sandbox takes it.
			if cg, err := r.cgroups.Open(name); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := cg.Destroy(ctx); err != nil {
					r.log.Warn("remove dead sandbox's cgroup", "cgroup", name, "err", err)
				}
				cancel()
			}
			held.Close()
			continue
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			out = append(out, Handle{ID: id, Slot: slot})
		}
	}
	return out, nil
}

// Destroy ends a long-lived sandbox known only by its id and slot (an
// orphan: alive, but with no record) and removes what it leaves behind.
func (r *Runtime) Destroy(ctx context.Context, h Handle) error {
	if err := validID(h.ID); err != nil {
		return err
	}
	cg, err := r.cgroups.Open(cgName{kind: kindSandbox, instance: r.instance, slot: h.Slot, id: h.ID}.String())
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Destroy kills everything inside (thawing a frozen cgroup) first.
	errs := []error{cg.Destroy(dctx)}
	errs = append(errs, os.RemoveAll(filepath.Join(r.cfg.DataDir, "sandboxes", h.ID)))
	if r.cfg.Net != nil {
		// Its egress rules, if any: their slot is free now.
		errs = append(errs, r.cfg.Net.Sweep(r.slotHeld))
	}
	return errors.Join(errs...)
}

// RemoveStaleDirs removes sandbox directories under the data dir whose id
// is not in keep (what a sandbox that died while no daemon ran left).
func (r *Runtime) RemoveStaleDirs(keep func(id string) bool) error {
	dir := filepath.Join(r.cfg.DataDir, "sandboxes")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !keep(e.Name()) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// SetLimits changes the cgroup limits (memory, CPU quota, pids) of a live
// sandbox; the disk size and rlimits are fixed at start.
func (b *Sandbox) SetLimits(l limits.Limits) error {
	if err := l.Validate(b.sb.rt.cfg.Max); err != nil {
		return err
	}
	return b.sb.cg.SetLimits(cgroupLimits(l, true, false))
}

// SetEnv sets the environment variables of every process the sandbox's
// agent starts from now on.
func (b *Sandbox) SetEnv(ctx context.Context, env map[string]string) error {
	body, err := json.Marshal(server.InitRequest{EnvVars: env})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+server.InitPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.HTTPClient(false).Do(req)
	if err != nil {
		return fmt.Errorf("set sandbox environment: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("set sandbox environment: agent answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// ErrNoEgress is returned by SetEgress for a sandbox created without egress.
var ErrNoEgress = errors.New("the sandbox was created without network egress")

// SetEgress replaces the egress rules of a sandbox that has egress.
func (b *Sandbox) SetEgress(r netsetup.Rules) error {
	if !b.sb.netAttached {
		return ErrNoEgress
	}
	return b.sb.rt.cfg.Net.Update(b.sb.netSlot, b.sb.id, r)
}
