package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// ErrWorkerGone is returned by Worker.Run once the worker has ended: it
// was closed, a run was killed by a limit (which ends the whole sandbox),
// or it could not restore its clean state. Start a new worker.
var ErrWorkerGone = errors.New("sandbox worker has ended")

// ErrWorkerUnsupported is returned by NewWorker on hosts where a worker
// could not measure each run: cgroup v2 kernels before 6.12 cannot reset
// memory.peak. Use one sandbox per run there.
var ErrWorkerUnsupported = errors.New("sandbox workers are not supported on this host")

// WorkerSpec is the fixed part of a worker: its largest limits and the
// files placed in the home directory before every run.
type WorkerSpec struct {
	// Limits caps every run's limits. The disk and /dev/shm sizes are the
	// worker's own (runs must ask for the same); memory, CPU, pids and
	// rlimits are set per run, at most these.
	Limits limits.Limits
	CopyIn []CopyIn
	// Template is the worker's root file system (see Spec.Template);
	// every run in it names the same.
	Template string
}

// Worker is a sandbox that runs programs one after another, for a judge's
// test cases: namespaces, root file system, cgroup and seccomp are set up
// once; each Run starts the program as a fresh process as uid 1000, with
// the run's limits applied to the cgroup (its counters reset) and its
// rlimits. After each run the init kills every process the program left,
// empties every directory the program could write (home, /tmp, /var/tmp,
// /dev/shm, /dev/mqueue) and places the files again; a worker that cannot
// (System V IPC objects left, an entry it cannot remove) ends itself.
// A run stopped by a limit the runtime enforces (wall or CPU time,
// output) ends the worker: Run reports the verdict, and the next Run
// returns ErrWorkerGone.
//
// A Worker runs one program at a time; it is not safe for concurrent use.
type Worker struct {
	sb     *sandbox
	max    limits.Limits
	pid    int
	pidfd  int
	ctl    *os.File
	events chan nsinit.Event
	done   chan struct{} // closed once the init is reaped
	ready  bool          // the init reported clean since the last run
	gone   bool
	// applied are the cgroup limits in force (set is false before the
	// first run): runs with the same limits skip rewriting them.
	applied struct {
		l   cgroup.Limits
		set bool
	}
}

// NewWorker starts a worker sandbox and waits until it can run programs.
func (r *Runtime) NewWorker(ctx context.Context, ws WorkerSpec) (_ *Worker, retErr error) {
	s := Spec{Argv: []string{"worker"}, Limits: ws.Limits, CopyIn: ws.CopyIn, Template: ws.Template}
	if err := r.Validate(&s); err != nil {
		return nil, err
	}
	sb := &sandbox{rt: r, spec: s, id: newID(), lastPhase: time.Now(), worker: true}
	defer func() {
		if retErr != nil {
			sb.release()
		}
	}()
	if err := sb.prepare(); err != nil {
		return nil, err
	}
	// The worker places the files itself, before every run.
	// Each run's peak memory comes from resetting the cgroup's peak.
	if err := sb.cg.ResetCounters(); err != nil {
		return nil, err
	}
	if st, err := sb.cg.Stats(); err != nil {
		return nil, err
	} else if st.MemoryPeakUnavailable {
		return nil, fmt.Errorf("%w: the kernel cannot reset the cgroup's memory.peak (cgroup v2 before Linux 6.12)", ErrWorkerUnsupported)
	}
	sb.cfg.Worker = &nsinit.WorkerConfig{Files: sb.cfg.Layout.CopyIn}
	sb.cfg.Layout.CopyIn = nil
	sb.cfg.Argv = nil
	sb.cfg.Rlimits = workerRlimits(ws.Limits)

	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	ctlParent, ctlChild, err := socketpair()
	if err != nil {
		return nil, err
	}
	pid, pidfd, err := sb.spawn(devnull, devnull, devnull, ctlChild)
	ctlChild.Close()
	if err != nil {
		ctlParent.Close()
		return nil, err
	}
	w := &Worker{sb: sb, max: ws.Limits, pid: pid, pidfd: pidfd, ctl: ctlParent,
		events: make(chan nsinit.Event, 4), done: make(chan struct{})}
	exited := exitWatch(pidfd)
	go func() {
		exited()
		reap(pid)
		close(w.done)
	}()
	go readEvents(ctlParent, w.events)
	fail := func(err error) (*Worker, error) {
		w.Close()
		return nil, err
	}
	if err := sendConfig(ctlParent, sb.cfg); err != nil {
		return fail(err)
	}
	// The init reports "started" (set up) and then "ready".
	for _, want := range []string{nsinit.EventStarted, nsinit.EventReady} {
		select {
		case ev, ok := <-w.events:
			switch {
			case !ok:
				return fail(sb.deathError())
			case ev.Kind != want || ev.Dirty != "":
				return fail(fmt.Errorf("sandbox set-up failed: %s%s", ev.Error, ev.Dirty))
			}
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	w.ready = true
	sb.trace("worker ready")
	// The init holds what it was passed; the host keeps the pidfd, the
	// control socket and the cgroup.
	sb.closeFiles()
	return w, nil
}

// workerRlimits are the init's own limits: the worker's largest, without
// RLIMIT_CPU (the init's CPU time adds up over its runs). A run's CPU time
// is enforced on the cgroup, as for one-shot runs.
func workerRlimits(l limits.Limits) []nsinit.Rlimit {
	var out []nsinit.Rlimit
	for _, r := range rlimits(l) {
		if r.Resource != unix.RLIMIT_CPU {
			out = append(out, r)
		}
	}
	return out
}

// check validates a run's spec against the worker.
func (w *Worker) check(s *Spec) error {
	if err := w.sb.rt.Validate(s); err != nil {
		return err
	}
	l, m := s.Limits, w.max
	switch {
	case len(s.CopyIn) > 0 || s.Collect != nil || s.Egress != nil:
		return fmt.Errorf("%w: a worker run takes no files, collection or network (they belong to the worker)", ErrInvalidSpec)
	case s.Template != w.sb.spec.Template:
		return fmt.Errorf("%w: a worker run uses the worker's template", ErrInvalidSpec)
	case l.DiskBytes != m.DiskBytes || l.ShmBytes != m.ShmBytes:
		return fmt.Errorf("%w: a worker run has the worker's disk and /dev/shm sizes", ErrInvalidSpec)
	case l.MemoryBytes > m.MemoryBytes || l.CPUs > m.CPUs || l.Pids > m.Pids ||
		l.FileBytes > m.FileBytes || l.OpenFiles > m.OpenFiles || l.StackBytes > m.StackBytes:
		return fmt.Errorf("%w: a worker run's limits must be within the worker's", ErrInvalidSpec)
	}
	return nil
}

// Fits reports whether a run with these limits can use the worker.
func (w *Worker) Fits(l limits.Limits) bool {
	s := Spec{Argv: []string{"x"}, Limits: l, Template: w.sb.spec.Template}
	return w.check(&s) == nil
}

// Run runs one program in the worker and waits for it, like Runtime.Run.
func (w *Worker) Run(ctx context.Context, s Spec) (*Result, error) {
	if err := w.check(&s); err != nil {
		return nil, err
	}
	if err := w.awaitReady(ctx); err != nil {
		return nil, err
	}
	l := s.Limits
	sb := w.sb
	cl := cgroup.Limits{MemoryBytes: l.MemoryBytes, CPUQuota: l.CPUs, Pids: l.Pids + 1, OOMOneVictim: true}
	// With the limits in force the counters are fresh already: awaitReady
	// reset them when the last run's clean-up was reported.
	if !w.applied.set || w.applied.l != cl {
		w.applied.set = false
		if err := sb.cg.Rebase(cl); err != nil {
			w.Close()
			return nil, fmt.Errorf("%w: cgroup: %v", ErrWorkerGone, err)
		}
		w.applied.l, w.applied.set = cl, true
	}
	pipes, err := newStdio()
	if err != nil {
		return nil, err
	}
	env := dedupEnv(append(append([]string{}, defaultEnv...), s.Env...))
	job, err := json.Marshal(nsinit.Job{Argv: s.Argv, Env: env, Cwd: rootfs.UserHome, Rlimits: workerRlimits(l)})
	if err != nil {
		pipes.closeChildEnds()
		pipes.closeParentEnds()
		return nil, err
	}
	rights := unix.UnixRights(int(pipes.inR.Fd()), int(pipes.outW.Fd()), int(pipes.errW.Fd()))
	err = sendmsg(w.ctl, job, rights)
	pipes.closeChildEnds()
	if err != nil {
		pipes.closeParentEnds()
		w.Close()
		return nil, fmt.Errorf("%w: send job: %v", ErrWorkerGone, err)
	}
	w.ready = false

	// The whole worker: every process of the run, wherever it is.
	k := &killer{pidfd: w.pidfd, cg: w.sb.cg, after: func() { w.gone = true }}
	kill := k.kill
	outLimitHit := make(chan struct{}, 2)
	var outputs sync.WaitGroup
	stdout := &capture{limit: l.OutputBytes, tee: s.Stdout, hit: outLimitHit}
	stderr := &capture{limit: l.OutputBytes, tee: s.Stderr, hit: outLimitHit}
	outputs.Add(2)
	go func() { defer outputs.Done(); stdout.drain(pipes.outR) }()
	go func() { defer outputs.Done(); stderr.drain(pipes.errR) }()
	go feedStdin(pipes.inW, s.Stdin)
	finish := func(err error) (*Result, error) {
		kill(killedCancel)
		<-w.done
		outputs.Wait()
		return nil, err
	}

	res := &Result{}
	// The init reports the program's exit, or why it could not start it;
	// not its start (one wake-up less per run): the wall time limit
	// counts from the job's sending, the reported time is the init's.
	exit, gotExit, wallTime := supervise(ctx, w.events, l, sb.cg, outLimitHit, kill)
	switch {
	case gotExit || exit.Kind != nsinit.EventError:
	case exit.ExecErr:
		outputs.Wait()
		sb.execFailed(res, stdout, stderr, exit.Error)
		return res, nil
	default:
		return finish(fmt.Errorf("%w: %s", ErrWorkerGone, exit.Error))
	}
	res.Wall = wallTime
	if gotExit && exit.WallMicros > 0 {
		// The init's measure: the host may see the start and exit
		// events together, after the fact.
		res.Wall = time.Duration(exit.WallMicros) * time.Microsecond
	}
	if w.gone {
		<-w.done
	}
	// The init killed what the program left before reporting its exit,
	// so both pipes reach EOF.
	outputs.Wait()
	res.Stdout, res.StdoutTruncated = stdout.bytes(), stdout.truncated
	res.Stderr, res.StderrTruncated = stderr.bytes(), stderr.truncated
	sb.collectStats(res)
	if w.gone {
		w.Close()
	}
	if k.reason == killedCancel {
		return res, fmt.Errorf("run interrupted: %w", context.Cause(ctx))
	}
	classify(res, k.reason, exit, gotExit, l)
	return res, nil
}

// WaitReady waits until the worker has cleaned up after its last run and
// can take the next; ErrWorkerGone if it cannot (a kill ended it, or it
// could not restore its clean state) — then Close it.
func (w *Worker) WaitReady(ctx context.Context) error { return w.awaitReady(ctx) }

// awaitReady waits for the init to report clean after the previous run.
func (w *Worker) awaitReady(ctx context.Context) error {
	if w.gone {
		return ErrWorkerGone
	}
	if w.ready {
		return nil
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case ev, ok := <-w.events:
		if ok && ev.Kind == nsinit.EventReady && ev.Dirty == "" {
			// The counters are reset now, not when the next run starts:
			// a daemon waits for the clean-up after answering (the run
			// pool), so the next run does not wait for this. (Before
			// the first run Rebase resets them with the limits.)
			if w.applied.set {
				if err := w.sb.cg.ResetCounters(); err != nil {
					w.sb.rt.log.Debug("worker retired", "sandbox", w.sb.id, "reason", err)
					break
				}
			}
			w.ready = true
			return nil
		}
		if ok && ev.Dirty != "" {
			w.sb.rt.log.Debug("worker retired", "sandbox", w.sb.id, "reason", ev.Dirty)
		}
	case <-timer.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.Close()
	return ErrWorkerGone
}

// Close ends the worker and releases its resources; it is idempotent.
func (w *Worker) Close() error {
	if w.ctl == nil {
		return nil
	}
	w.gone = true
	killInit(w.pidfd, w.sb.cg)
	<-w.done
	unix.Close(w.pidfd)
	w.ctl.Close()
	w.ctl = nil
	w.sb.release()
	return nil
}

// sendmsg sends one message with descriptors on the non-blocking control
// socket (File.Fd would make it blocking again), waiting in the poller if
// the socket's buffer is full.
func sendmsg(f *os.File, msg, oob []byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), msg, oob, nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}
