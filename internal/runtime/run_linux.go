package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/agent/server"
	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/idmap"
	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// CopyIn is a file copied into the sandbox user's home directory: a host
// file (HostPath) or, when HostPath is empty, Data with Mode.
type CopyIn struct {
	Name     string // relative path under /home/user
	HostPath string
	Data     []byte
	Mode     os.FileMode // permission bits for Data (0: 0644)
}

// Spec describes one run.
type Spec struct {
	Argv   []string
	Env    []string // KEY=VALUE, added to (and overriding) the defaults
	Limits limits.Limits
	Stdin  io.Reader // nil: empty
	// Stdout and Stderr, if set, receive output as it arrives (up to the
	// output limit) in addition to the capture in the Result.
	Stdout, Stderr io.Writer
	CopyIn         []CopyIn
	// Collect, if set, returns the files the program creates or modifies
	// (one-shot runs only).
	Collect *Collect
	// Egress, if set, gives the sandbox a network interface with egress
	// under these rules; nil: loopback only.
	Egress *netsetup.Rules
	// Template names the image the sandbox's root file system is made
	// of (see internal/image); "" (or a built-in name) is the host
	// template.
	Template string
}

// defaultEnv is the environment tenant code starts with.
var defaultEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=" + rootfs.UserHome, "USER=" + rootfs.UserName, "LOGNAME=" + rootfs.UserName,
	"SHELL=/bin/bash", "LANG=C.UTF-8", "HOSTNAME=" + rootfs.Hostname, "TMPDIR=/tmp",
}

// ErrInvalidSpec is wrapped by errors about the request itself.
var ErrInvalidSpec = errors.New("invalid run request")

// Validate checks a spec before any resource is acquired.
// (An unknown template is found by prepare, first thing, when it holds
// the image: ErrInvalidSpec too, before anything is acquired.)
func (r *Runtime) Validate(s *Spec) error {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return fmt.Errorf("%w: no command given", ErrInvalidSpec)
	}
	for _, a := range s.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: command argument contains a NUL byte", ErrInvalidSpec)
		}
	}
	for _, kv := range s.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("%w: environment entry %q must be KEY=VALUE", ErrInvalidSpec, kv)
		}
	}
	for _, c := range s.CopyIn {
		if c.Name == "" || strings.HasPrefix(c.Name, "/") || c.Name == ".." || strings.HasPrefix(c.Name, "../") || strings.Contains(c.Name, "/../") || strings.HasSuffix(c.Name, "/..") {
			return fmt.Errorf("%w: copy-in name %q must be a relative path inside the home directory", ErrInvalidSpec, c.Name)
		}
	}
	if s.Collect != nil {
		if err := s.Collect.validate(); err != nil {
			return err
		}
	}
	return s.Limits.Validate(r.cfg.Max)
}

// Run starts the program in a new sandbox and waits for it. It returns an
// error only when the request is invalid or the sandbox could not be set
// up; everything the program does is reported in the Result.
func (r *Runtime) Run(ctx context.Context, s Spec) (*Result, error) {
	if err := r.Validate(&s); err != nil {
		return nil, err
	}
	sb := &sandbox{rt: r, spec: s, id: newID(), lastPhase: time.Now()}
	defer sb.release()
	if err := sb.prepare(); err != nil {
		return nil, err
	}
	sb.trace("prepared")
	return sb.run(ctx)
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sandbox holds the resources of one run; release frees all of them.
type sandbox struct {
	rt   *Runtime
	spec Spec
	id   string

	ids         *idmap.Range
	cg          *cgroup.Cgroup
	files       []*os.File // closed in release (parent copies of passed fds)
	cfg         nsinit.Config
	extra       []*os.File // descriptors passed to the init, from fd 4 on
	cgroupTasks []int      // v1: descriptor numbers of the tasks files in the init
	collectR    *os.File   // read end of the collected-files pipe
	collectW    *os.File   // its write end, closed once passed to the init
	keepAlive   bool       // long-lived: survives the process that started it
	worker      bool       // a Worker's sandbox: runs job after job
	released    bool
	netSlot     int  // the slot the egress rules are tagged with
	netAttached bool // egress set up: Detach on release
	imageFD     int  // the held image directory's descriptor in the init; 0: host template
	lastPhase   time.Time
}

// cgroupLimits are the cgroup limits of a sandbox with tenant limits l.
// The init is one more process, so tenant code gets the full pids limit.
// A long-lived sandbox's tenant processes live in a nested cgroup, and the
// agent keeps server.PidsReserve more for its threads: a fork bomb cannot
// take the pids the agent's Go runtime needs (it treats a thread it cannot
// create as fatal). The nested limit is one more than the tenant's, as for
// the init: the agent's forking thread lives there. On cgroup v1 the
// nested cgroup holds the tenant's memory limit too, and the agent has
// server.MemoryReserve beyond it: a tenant at its limit does not stall the
// agent in reclaim (and so the kills it is sent).
func cgroupLimits(l limits.Limits, longLived, worker bool) cgroup.Limits {
	c := cgroup.Limits{MemoryBytes: l.MemoryBytes, CPUQuota: l.CPUs, Pids: l.Pids + 1, OOMOneVictim: longLived || worker}
	if longLived {
		c.TenantPids = l.Pids + 1
		c.Pids += server.PidsReserve
		c.SupervisorMemory = server.MemoryReserve
	}
	return c
}

// templateOf returns the host-side template of a sandbox's spec and, for
// an image, the image's directory held for the sandbox (image.Hold), which
// its init keeps open for as long as it lives.
func (r *Runtime) templateOf(s *Spec) (*rootfs.Template, *os.File, error) {
	if s.Template == "" || image.IsBuiltin(s.Template) {
		t, err := rootfs.EnsureHostTemplate(r.template)
		return t, nil, err
	}
	dir, err := r.images.Hold(s.Template)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	t, err := rootfs.EnsureImageTemplate(r.template, s.Template, image.RootOf(dir))
	if err != nil {
		dir.Close()
		return nil, nil, err
	}
	return t, dir, nil
}

func (sb *sandbox) prepare() error {
	tmpl, held, err := sb.rt.templateOf(&sb.spec)
	if err != nil {
		return err
	}
	if held != nil {
		sb.files = append(sb.files, held)
	}
	if sb.ids, err = sb.rt.ids.Allocate(); err != nil {
		return err
	}
	l := sb.spec.Limits
	// A long-lived sandbox's agent and a worker's init outlive a tenant's
	// OOM; a one-shot run ends whole (its verdict is MLE either way).
	sb.cg, err = sb.rt.cgroups.Create(sb.cgroupName().String(), cgroupLimits(l, sb.keepAlive, sb.worker))
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	// fd 3 is the control socket; the uid-range lock is fd 4, so the init
	// holds the range for as long as the sandbox lives.
	sb.extra = append(sb.extra, sb.ids.LockFile())
	if held != nil {
		sb.imageFD = sb.passFD(held)
	}
	layout := rootfs.Layout{
		Staging:   sb.rt.staging,
		Lowers:    []string{tmpl.Skeleton},
		DiskBytes: l.DiskBytes,
		ShmBytes:  min(l.ShmBytes, l.DiskBytes),
	}
	for _, dir := range tmpl.Trees {
		f, err := rootfs.CloneTree(tmpl.TreeSource(dir))
		if err != nil {
			return err
		}
		sb.files = append(sb.files, f)
		layout.Trees = append(layout.Trees, rootfs.Tree{Target: dir, FD: sb.passFD(f)})
	}
	if tasks, err := sb.cg.TaskFiles(); err == nil {
		// cgroup v1: the init moves itself (see nsinit.Config.CgroupTasks).
		for _, f := range tasks {
			sb.files = append(sb.files, f)
			sb.cgroupTasks = append(sb.cgroupTasks, sb.passFD(f))
		}
	} else if !errors.Is(err, cgroup.ErrNotSupported) {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, c := range sb.spec.CopyIn {
		if c.HostPath == "" {
			f, err := memFile(c.Name, c.Data)
			if err != nil {
				return fmt.Errorf("copy-in %s: %w", c.Name, err)
			}
			sb.files = append(sb.files, f)
			mode := c.Mode.Perm()
			if mode == 0 {
				mode = 0o644
			}
			layout.CopyIn = append(layout.CopyIn, rootfs.CopyIn{Name: c.Name, FD: sb.passFD(f), Mode: uint32(mode)})
			continue
		}
		f, fi, err := openRegular(c.HostPath)
		if err != nil {
			return fmt.Errorf("%w: copy-in %s: %v", ErrInvalidSpec, c.Name, err)
		}
		sb.files = append(sb.files, f)
		layout.CopyIn = append(layout.CopyIn, rootfs.CopyIn{Name: c.Name, FD: sb.passFD(f), Mode: uint32(fi.Mode().Perm())})
	}
	var collect *nsinit.Collect
	if c := sb.spec.Collect; c != nil && !sb.keepAlive {
		if sb.collectR, sb.collectW, err = os.Pipe(); err != nil {
			return fmt.Errorf("collect pipe: %w", err)
		}
		sb.files = append(sb.files, sb.collectR, sb.collectW)
		dir := rootfs.UserHome
		if c.Dir != "" {
			dir += "/" + c.Dir
		}
		collect = &nsinit.Collect{Dir: dir, FD: sb.passFD(sb.collectW), MaxFiles: c.MaxFiles, MaxBytes: c.MaxBytes}
	}
	prog, err := sb.rt.seccomp()
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if sb.spec.Egress != nil {
		if sb.rt.cfg.Net == nil {
			return fmt.Errorf("%w: egress is not configured on this host", netsetup.ErrUnavailable)
		}
		if err := sb.spec.Egress.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
		}
		layout.ResolvConf = sb.rt.cfg.Net.ResolvConf()
	}
	env := append(append([]string{}, defaultEnv...), sb.spec.Env...)
	sb.cfg = nsinit.Config{
		Layout:      layout,
		Argv:        sb.spec.Argv,
		Env:         dedupEnv(env),
		Cwd:         rootfs.UserHome,
		Rlimits:     rlimits(l),
		Seccomp:     prog,
		CgroupTasks: sb.cgroupTasks,
		Collect:     collect,
	}
	return nil
}

func (sb *sandbox) cgroupName() cgName {
	if sb.keepAlive {
		return cgName{kind: kindSandbox, instance: sb.rt.instance, slot: sb.ids.Slot, id: sb.id}
	}
	return cgName{kind: kindRun, instance: sb.rt.instance, slot: sb.ids.Slot, id: sb.id}
}

// passFD records f to be inherited by the init and returns its number there.
func (sb *sandbox) passFD(f *os.File) int {
	sb.extra = append(sb.extra, f)
	return nsinit.ControlFD + len(sb.extra)
}

// memFile holds data in a sealed memory file, positioned at its start,
// so copy-in data never touches a host file system.
func memFile(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("copy-in", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func openRegular(p string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, errors.New("not a regular file")
	}
	return f, fi, nil
}

func rlimits(l limits.Limits) []nsinit.Rlimit {
	cpuSec := uint64(math.Ceil(l.CPUTime.Seconds())) + 1
	return []nsinit.Rlimit{
		// 1, not 0: the kernel treats a core limit of 1 as "never dump",
		// also when core_pattern pipes to a host helper (which a limit of
		// 0 does not stop), so a crash inside never reaches host tooling.
		{Resource: unix.RLIMIT_CORE, Cur: 1, Max: 1},
		{Resource: unix.RLIMIT_FSIZE, Cur: uint64(l.FileBytes), Max: uint64(l.FileBytes)},
		{Resource: unix.RLIMIT_NOFILE, Cur: uint64(l.OpenFiles), Max: uint64(l.OpenFiles)},
		{Resource: unix.RLIMIT_STACK, Cur: uint64(l.StackBytes), Max: uint64(l.StackBytes)},
		// A backstop only: the runtime enforces CPU time on the whole
		// cgroup; this catches a single process if the watcher is late.
		{Resource: unix.RLIMIT_CPU, Cur: cpuSec, Max: cpuSec + 1},
	}
}

func dedupEnv(env []string) []string {
	idx := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// release frees every resource; it is safe to call more than once.
func (sb *sandbox) release() {
	if sb.released {
		return
	}
	sb.released = true
	if sb.netAttached {
		if err := sb.rt.cfg.Net.Detach(sb.netSlot, sb.id); err != nil {
			sb.rt.log.Error("remove network rules", "sandbox", sb.id, "err", err)
		}
	}
	if sb.cg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := sb.cg.Destroy(ctx); err != nil {
			sb.rt.log.Error("destroy cgroup", "sandbox", sb.id, "err", err)
		}
		cancel()
	}
	sb.closeFiles()
	sb.trace("released")
}

// closeFiles closes the parent's copies of what was passed to the init,
// and its hold on the uid range (the init holds it from its start).
func (sb *sandbox) closeFiles() {
	for _, f := range sb.files {
		f.Close()
	}
	sb.files = nil
	if sb.ids != nil {
		sb.ids.Close()
	}
}

// killReason records why the runtime ended a run early.
type killReason int

const (
	notKilled killReason = iota
	killedWall
	killedCPU
	killedOutput
	killedCancel
)

func (sb *sandbox) run(ctx context.Context) (*Result, error) {
	l := sb.spec.Limits
	ctlParent, ctlChild, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer ctlParent.Close()

	pipes, err := newStdio()
	if err != nil {
		ctlChild.Close()
		return nil, err
	}
	pid, pidfd, startErr := sb.spawn(pipes.inR, pipes.outW, pipes.errW, ctlChild)
	ctlChild.Close()
	pipes.closeChildEnds()
	if startErr != nil {
		pipes.closeParentEnds()
		return nil, startErr
	}
	defer unix.Close(pidfd)
	type collected struct {
		files     []File
		truncated bool
		err       error
	}
	var collectDone chan collected
	if sb.collectR != nil {
		// The init holds the only write end now: EOF when it exits.
		sb.collectW.Close()
		collectDone = make(chan collected, 1)
		go func() {
			f, t, err := readFiles(sb.collectR, *sb.spec.Collect)
			collectDone <- collected{f, t, err}
		}()
	}
	stdinW, outR, errR := pipes.inW, pipes.outR, pipes.errR
	// From here on the init exists: every path below kills and reaps it.
	// SIGKILL to the pid namespace's init ends every process in the
	// namespace. Through the pidfd, never a recycled pid.
	k := &killer{pidfd: pidfd, cg: sb.cg}
	kill := k.kill
	waitDone := make(chan error, 1)
	exited := exitWatch(pidfd)
	go func() {
		exited()
		waitDone <- reap(pid)
	}()

	res := &Result{}
	outLimitHit := make(chan struct{}, 2)
	var outputs sync.WaitGroup
	stdout := &capture{limit: l.OutputBytes, tee: sb.spec.Stdout, hit: outLimitHit}
	stderr := &capture{limit: l.OutputBytes, tee: sb.spec.Stderr, hit: outLimitHit}
	outputs.Add(2)
	go func() { defer outputs.Done(); stdout.drain(outR) }()
	go func() { defer outputs.Done(); stderr.drain(errR) }()
	go feedStdin(stdinW, sb.spec.Stdin)

	finish := func(setupErr error) (*Result, error) {
		kill(killedCancel)
		<-waitDone
		outputs.Wait()
		return nil, setupErr
	}

	sb.trace("spawned")
	if err := sb.attachNet(pid); err != nil {
		return finish(err)
	}
	if err := sendConfig(ctlParent, sb.cfg); err != nil {
		return finish(err)
	}
	events := make(chan nsinit.Event, 2)
	go readEvents(ctlParent, events)

	// The set-up phase is bounded too: a sandbox that cannot start within
	// the wall limit (plus slack) is a failure, not a hang.
	setupTimer := time.NewTimer(l.WallTime + 10*time.Second)
	defer setupTimer.Stop()
	var started nsinit.Event
	select {
	case started = <-events:
	case <-setupTimer.C:
		return finish(errors.New("sandbox set-up timed out"))
	case <-ctx.Done():
		return finish(ctx.Err())
	}
	switch started.Kind {
	case nsinit.EventStarted:
		sb.trace("started", "init_us", started.SetupMicros)
	case nsinit.EventError:
		if started.ExecErr {
			<-waitDone
			outputs.Wait()
			sb.execFailed(res, stdout, stderr, started.Error)
			return res, nil
		}
		return finish(fmt.Errorf("sandbox set-up failed: %s", started.Error))
	default:
		return finish(sb.deathError())
	}
	exit, gotExit, wallTime := supervise(ctx, events, l, sb.cg, outLimitHit, kill)
	res.Wall = wallTime
	sb.trace("ended")
	// The init exits right after reporting (after sending the files, if
	// asked for); if it does not, end it.
	grace := 2 * time.Second
	if collectDone != nil {
		grace = 10 * time.Second
	}
	exitTimer := time.NewTimer(grace)
	defer exitTimer.Stop()
	select {
	case <-waitDone:
	case <-exitTimer.C:
		if collectDone != nil {
			// Collecting took too long: the run's verdict stands, the
			// files read so far are kept.
			killInit(pidfd, sb.cg)
		} else {
			kill(killedCancel)
		}
		<-waitDone
	}
	if collectDone != nil {
		c := <-collectDone
		res.Files, res.FilesTruncated = c.files, c.truncated
		if c.err != nil {
			res.FilesError = c.err.Error()
			sb.rt.log.Warn("collect files", "sandbox", sb.id, "err", c.err)
		}
	}
	outputs.Wait()
	res.Stdout, res.StdoutTruncated = stdout.bytes(), stdout.truncated
	res.Stderr, res.StderrTruncated = stderr.bytes(), stderr.truncated
	sb.collectStats(res)
	if k.reason == killedCancel {
		return res, fmt.Errorf("run interrupted: %w", context.Cause(ctx))
	}
	classify(res, k.reason, exit, gotExit, l)
	return res, nil
}

// killer ends a run once, for the first reason given, by SIGKILL to an
// init through its pidfd (every process of its pid namespace dies with it);
// then, if set, it calls after.
type killer struct {
	once   sync.Once
	reason killReason
	pidfd  int
	cg     *cgroup.Cgroup
	after  func()
}

func (k *killer) kill(why killReason) {
	k.once.Do(func() {
		k.reason = why
		killInit(k.pidfd, k.cg)
		if k.after != nil {
			k.after()
		}
	})
}

// killInit sends SIGKILL to a sandbox's init through its pidfd, after
// lifting the cgroup's CPU quota (see cgroup.Cgroup.LiftCPUQuota): a task
// stranded by CFS throttling would never act on the signal. The kill is
// sent whether or not the quota could be lifted; its error is returned.
func killInit(pidfd int, cg *cgroup.Cgroup) error {
	cg.LiftCPUQuota()
	return unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
}

// supervise waits for the program's exit event while enforcing the wall
// and CPU-time limits (CPU on the whole cgroup) and the output limit;
// kill ends the run for a reason. It returns the exit event, if one came,
// and the wall time from the call.
func supervise(ctx context.Context, events <-chan nsinit.Event, l limits.Limits, cg *cgroup.Cgroup, outLimitHit <-chan struct{}, kill func(killReason)) (exit nsinit.Event, gotExit bool, wallTime time.Duration) {
	t0 := time.Now()
	wall := time.NewTimer(l.WallTime)
	defer wall.Stop()
	cpuCheck := time.NewTimer(cpuPollInterval(l, 0))
	defer cpuCheck.Stop()
	for {
		select {
		case ev, ok := <-events:
			// Another event (an error) is returned too, for the caller
			// to tell why; a closed channel is the init's death.
			return ev, ok && ev.Kind == nsinit.EventExit, time.Since(t0)
		case <-wall.C:
			kill(killedWall)
			return exit, false, time.Since(t0)
		case <-cpuCheck.C:
			st, err := cg.RunStats()
			if err == nil && st.CPUUsage >= l.CPUTime {
				kill(killedCPU)
				return exit, false, time.Since(t0)
			}
			var used time.Duration
			if err == nil {
				used = st.CPUUsage
			}
			cpuCheck.Reset(cpuPollInterval(l, used))
		case <-outLimitHit:
			kill(killedOutput)
			return exit, false, time.Since(t0)
		case <-ctx.Done():
			kill(killedCancel)
			return exit, false, time.Since(t0)
		}
	}
}

// spawn starts the sandbox init in its new namespaces with the given
// stdio and control socket and the descriptors recorded with passFD. It
// returns the init's pid and a pidfd for race-free signalling.
func (sb *sandbox) spawn(stdin, stdout, stderr, ctl *os.File) (pid, pidfd int, err error) {
	sysAttr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
			unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(sb.ids.HostID), Size: idmap.Size}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(sb.ids.HostID), Size: idmap.Size}},
		GidMappingsEnableSetgroups: true,
		// Become root of the new user namespace (host uid 0 is not
		// mapped there) so the init keeps its namespace capabilities.
		Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}},
		PidFD:      new(int),
	}
	if sb.keepAlive {
		// Its own session: a terminal's signals to the daemon's process
		// group (Ctrl-C) must not reach a sandbox that outlives it.
		sysAttr.Setsid = true
	} else {
		sysAttr.Pdeathsig = unix.SIGKILL
	}
	if len(sb.cgroupTasks) == 0 {
		// cgroup v2: the init is born inside its cgroup (CLONE_INTO_CGROUP)
		// and its cgroup namespace is rooted there.
		fd, err := sb.cg.FD()
		if err != nil {
			return 0, 0, fmt.Errorf("cgroup: %w", err)
		}
		defer unix.Close(fd)
		sysAttr.UseCgroupFD = true
		sysAttr.CgroupFD = fd
		sysAttr.Cloneflags |= unix.CLONE_NEWCGROUP
	}
	files := []uintptr{stdin.Fd(), stdout.Fd(), stderr.Fd(), ctl.Fd()}
	for _, f := range sb.extra {
		files = append(files, f.Fd())
	}
	// syscall.ForkExec rather than os/exec: no per-process pidfd probe
	// fork, and the pidfd makes every later kill race-free.
	pid, err = syscall.ForkExec(sb.rt.cfg.Exe, []string{nsinit.Arg0}, &syscall.ProcAttr{
		// One P, and no preemption signals while it waits on a raw
		// system call (nsinit/wait_linux.go).
		Env: []string{"GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1"}, Files: files, Sys: sysAttr,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("start sandbox init: %w", err)
	}
	return pid, *sysAttr.PidFD, nil
}

// attachNet gives the sandbox egress if its spec asks for it. It runs
// after spawn and before the init gets its configuration, so no tenant
// code runs before the network is in place; pid is the unreaped init.
func (sb *sandbox) attachNet(pid int) error {
	if sb.spec.Egress == nil {
		return nil
	}
	ns, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: sandbox network namespace: %v", netsetup.ErrUnavailable, err)
	}
	defer unix.Close(ns)
	if err := sb.rt.cfg.Net.Attach(ns, sb.ids.Slot, sb.id, *sb.spec.Egress); err != nil {
		return err
	}
	sb.netSlot, sb.netAttached = sb.ids.Slot, true
	sb.trace("network")
	return nil
}

// sendConfig sends the init its configuration.
func sendConfig(ctl *os.File, cfg nsinit.Config) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode init config: %w", err)
	}
	if _, err := ctl.Write(b); err != nil {
		return fmt.Errorf("send init config: %w", err)
	}
	return nil
}

// reap waits for the init to exit.
func reap(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			return err
		}
	}
}

// trace logs the time since the previous phase at debug level.
func (sb *sandbox) trace(phase string, args ...any) {
	now := time.Now()
	if !sb.lastPhase.IsZero() {
		sb.rt.log.Debug("phase", append([]any{"sandbox", sb.id, "phase", phase, "us", now.Sub(sb.lastPhase).Microseconds()}, args...)...)
	}
	sb.lastPhase = now
}

func (sb *sandbox) collectStats(res *Result) {
	st, err := sb.cg.RunStats()
	if err != nil {
		sb.rt.log.Warn("cgroup stats", "sandbox", sb.id, "err", err)
		return
	}
	res.CPU = st.CPUUsage
	res.PeakMemory = st.MemoryPeak
	res.OOMKills = st.OOMKills
}

// deathError explains an init that died without reporting.
func (sb *sandbox) deathError() error {
	if st, err := sb.cg.Stats(); err == nil && st.OOMKills > 0 {
		return errors.New("sandbox init was killed by the OOM killer during set-up: raise the memory limit")
	}
	return errors.New("sandbox init exited without reporting")
}

// cpuPollInterval is how long the CPU-time limit cannot be reached given
// the usage so far and the CPU quota, clamped to [2ms, 100ms].
func cpuPollInterval(l limits.Limits, used time.Duration) time.Duration {
	left := l.CPUTime - used
	d := time.Duration(float64(left) / math.Max(l.CPUs, 1))
	return min(max(d, 2*time.Millisecond), 100*time.Millisecond)
}

// stdio holds the pipes of the init's stdin, stdout and stderr.
type stdio struct{ inR, inW, outR, outW, errR, errW *os.File }

func newStdio() (*stdio, error) {
	var s stdio
	var err error
	if s.inR, s.inW, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	if s.outR, s.outW, err = os.Pipe(); err != nil {
		s.closeParentEnds()
		s.closeChildEnds()
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	if s.errR, s.errW, err = os.Pipe(); err != nil {
		s.closeParentEnds()
		s.closeChildEnds()
		return nil, fmt.Errorf("stderr pipe: %w", err)
	}
	return &s, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// closeChildEnds closes the runner's copies of the ends the init uses.
func (s *stdio) closeChildEnds() { closeAll(s.inR, s.outW, s.errW) }

// closeParentEnds closes the runner's own ends.
func (s *stdio) closeParentEnds() { closeAll(s.inW, s.outR, s.errR) }

func socketpair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	// The runner's end is non-blocking, so os.File waits for it in the
	// network poller: a goroutine blocked in read(2) instead holds its P
	// until the runtime's monitor retakes it, and each retake keeps that
	// monitor waking every 20 µs, which preempts the sandboxed programs
	// (a judge worker reads three events per run). The init's end stays
	// blocking.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control-child"), nil
}

// readEvents forwards the init's events; the channel is closed when the
// socket reaches EOF (the init is gone). The init is untrusted-adjacent
// (it shares the sandbox), so messages are size-capped and strictly decoded.
func readEvents(f *os.File, out chan<- nsinit.Event) {
	defer close(out)
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil || n == 0 {
			return
		}
		var ev nsinit.Event
		if json.Unmarshal(buf[:n], &ev) != nil {
			return
		}
		out <- ev
	}
}

func feedStdin(w *os.File, r io.Reader) {
	defer w.Close()
	if r == nil {
		return
	}
	// EPIPE when the program exits without reading is expected.
	io.Copy(w, r)
}

// capture keeps up to limit bytes of a stream, optionally passing them on.
type capture struct {
	limit     int64
	tee       io.Writer
	hit       chan<- struct{}
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (c *capture) drain(r *os.File) {
	defer r.Close()
	chunk := make([]byte, 32<<10)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			c.add(chunk[:n])
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) add(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - int64(len(c.buf))
	if room <= 0 {
		if !c.truncated {
			c.truncated = true
			c.hit <- struct{}{}
		}
		return
	}
	if int64(len(p)) > room {
		p = p[:room]
		c.truncated = true
		c.hit <- struct{}{}
	}
	if need := len(c.buf) + len(p); need > cap(c.buf) && need > 1<<20 {
		// Past 1 MiB, grow straight to the cap: append's doubling would
		// leave the runner carrying its garbage through a flood.
		nb := make([]byte, len(c.buf), c.limit)
		copy(nb, c.buf)
		c.buf = nb
	}
	c.buf = append(c.buf, p...)
	if c.tee != nil {
		c.tee.Write(p)
	}
}

// execFailed reports a program that could not be started as a shell
// does: RE, exit status 127, and why on stderr (passed on when the output
// is streamed).
func (sb *sandbox) execFailed(res *Result, stdout, stderr *capture, why string) {
	stderr.add([]byte("soulbox: " + why + "\n"))
	res.Status, res.ExitCode = StatusRE, 127
	res.Stdout, res.Stderr = stdout.bytes(), stderr.bytes()
	res.StdoutTruncated, res.StderrTruncated = stdout.truncated, stderr.truncated
	sb.collectStats(res)
}

func (c *capture) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf
}
