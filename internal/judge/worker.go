package judge

import (
	"bytes"
	"context"
	"errors"

	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// workerStarter is a Runner that can also start workers
// (*runtime.Runtime is one).
type workerStarter interface {
	NewWorker(ctx context.Context, ws sbrt.WorkerSpec) (*sbrt.Worker, error)
}

// workerSlot runs the cases of one of Judge's parallel lanes in a worker
// sandbox: set up once with the program's files, cleaned between cases
// (see runtime.Worker), replaced when a case ends it (a time or output
// limit). Cases whose limits the worker cannot take, and runners without
// workers, get a fresh sandbox each (RunCase).
type workerSlot struct {
	e      *lang.Executor
	p      *lang.Program
	max    limits.Limits
	w      *sbrt.Worker
	failed bool // starting a worker failed: fresh sandboxes from now on
}

// workerLimits are a submission's largest limits: a worker takes every
// case whose disk and /dev/shm sizes match the submission's.
func workerLimits(l limits.Limits, cases []Case) limits.Limits {
	m := l
	for _, c := range cases {
		if c.Limits == nil || c.Limits.DiskBytes != l.DiskBytes || c.Limits.ShmBytes != l.ShmBytes {
			continue
		}
		cl := *c.Limits
		m.MemoryBytes = max(m.MemoryBytes, cl.MemoryBytes)
		m.CPUs = max(m.CPUs, cl.CPUs)
		m.Pids = max(m.Pids, cl.Pids)
		m.FileBytes = max(m.FileBytes, cl.FileBytes)
		m.OpenFiles = max(m.OpenFiles, cl.OpenFiles)
		m.StackBytes = max(m.StackBytes, cl.StackBytes)
	}
	return m
}

func (s *workerSlot) runCase(ctx context.Context, c Case, o Options) (CaseResult, error) {
	ws, ok := s.e.Runner.(workerStarter)
	l := caseLimits(c, o)
	if !ok || s.failed || o.FreshSandboxes {
		return RunCase(ctx, s.e, s.p, c, o)
	}
	// A worker that ended (or retired itself) before the program started
	// gets one replacement for this case.
	for attempt := 0; attempt < 2; attempt++ {
		if s.w == nil {
			w, err := ws.NewWorker(ctx, sbrt.WorkerSpec{Limits: s.max, CopyIn: s.p.Files, Template: s.p.Lang.Template})
			if err != nil {
				if ctx.Err() != nil {
					return CaseResult{}, ctx.Err()
				}
				s.failed = true
				return RunCase(ctx, s.e, s.p, c, o)
			}
			s.w = w
		}
		if !s.w.Fits(l) {
			return RunCase(ctx, s.e, s.p, c, o)
		}
		spec := s.p.JudgeSpec(l, bytes.NewReader(c.Input))
		spec.CopyIn = nil // placed by the worker
		res, err := s.w.Run(ctx, spec)
		if errors.Is(err, sbrt.ErrWorkerGone) {
			s.w.Close()
			s.w = nil
			continue
		}
		if err != nil {
			return CaseResult{}, err
		}
		return caseResult(c, o, res), nil
	}
	return RunCase(ctx, s.e, s.p, c, o)
}

func (s *workerSlot) close() {
	if s.w != nil {
		s.w.Close()
	}
}
