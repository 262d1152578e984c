// Package judge runs a submission against test cases: compile once, run
// each case as a fresh process with its own limits (in a worker sandbox
// cleaned between cases, or a sandbox of its own), compare the output,
// and give a verdict per case and overall. Interactive problems run the
// submission against an interactor program instead of comparing output
// (interactive.go). It holds no CLI logic.
package judge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Verdicts of a case and of a submission.
const (
	AC  = "AC"  // accepted
	WA  = "WA"  // wrong answer
	TLE = "TLE" // time limit (wall or CPU)
	MLE = "MLE" // memory limit
	RE  = "RE"  // runtime error: non-zero exit, signal, syscall filter, file size
	OLE = "OLE" // output limit
	CE  = "CE"  // compile error (submission only)
	PE  = "PE"  // presentation error (interactive: the interactor exited 2)
	JE  = "JE"  // judge error (interactive: the interactor failed, not the submission)
)

// Case is one test: stdin, expected stdout, and optionally its own limits.
type Case struct {
	Name   string
	Input  []byte
	Output []byte
	Limits *limits.Limits // nil: the submission's limits
}

// CaseResult is the verdict of one case.
type CaseResult struct {
	Name        string  `json:"name"`
	Verdict     string  `json:"verdict"`
	Status      string  `json:"status"` // the run's own status (OK, RE, SG, ...)
	ExitCode    int     `json:"exit_code"`
	TimeMS      float64 `json:"time_ms"` // CPU time of the run
	WallMS      float64 `json:"wall_ms"`
	MemoryBytes int64   `json:"memory_bytes"`
	Stderr      string  `json:"stderr,omitempty"` // first KiB, for failures
	// Interactor is the interactor's run (interactive problems only).
	Interactor *RunInfo `json:"interactor,omitempty"`
}

// Report is the outcome of a submission.
type Report struct {
	Verdict string              `json:"verdict"`
	Compile *lang.CompileReport `json:"-"`
	Cases   []CaseResult        `json:"cases"`
}

// Options configure Judge.
type Options struct {
	Limits   limits.Limits
	Compare  Comparator // nil: Lines
	Parallel int        // cases run at once (default 1)
	// FreshSandboxes runs every case in a sandbox of its own instead of
	// a worker sandbox cleaned between cases (slower; see runtime.Worker).
	FreshSandboxes bool
	// Interactor, if set, makes the problem interactive: each case runs
	// the submission against it (see runInteractive), in fresh sandboxes;
	// a case's Input and Output are the interactor's input.txt and
	// answer.txt, and the submission's stdin is the interactor's stdout.
	Interactor *Interactor
}

// Judge compiles source once and runs every case. The returned error is
// for set-up failures only; everything the submission does is a verdict.
func Judge(ctx context.Context, e *lang.Executor, l *lang.Language, source []byte, cases []Case, o Options) (*Report, error) {
	if len(cases) == 0 {
		return nil, errors.New("no test cases")
	}
	if o.Compare == nil {
		o.Compare = Lines{}
	}
	if o.Parallel < 1 {
		o.Parallel = 1
	}
	var ip *lang.Program
	if o.Interactor != nil {
		var err error
		if ip, err = prepareInteractor(ctx, e, o.Interactor); err != nil {
			return nil, err
		}
	}
	p, err := e.Prepare(ctx, l, source)
	if err != nil {
		return nil, err
	}
	rep := &Report{Compile: p.Compile, Cases: make([]CaseResult, len(cases))}
	if !p.OK() {
		rep.Verdict = CE
		rep.Cases = nil
		return rep, nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	wmax := workerLimits(o.Limits, cases)
	for range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &workerSlot{e: e, p: p, max: wmax}
			defer ws.close()
			for i := range next {
				var (
					cr  CaseResult
					err error
				)
				if ip != nil {
					cr, err = runInteractive(ctx, e, p, ip, o.Interactor.Limits, cases[i], o)
				} else {
					cr, err = ws.runCase(ctx, cases[i], o)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("case %s: %w", cases[i].Name, err)
					}
					mu.Unlock()
					continue
				}
				rep.Cases[i] = cr
			}
		}()
	}
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	rep.Verdict = AC
	for _, c := range rep.Cases {
		if c.Verdict != AC {
			rep.Verdict = c.Verdict
			break
		}
	}
	return rep, nil
}

// RunCase runs one case of a prepared program in a fresh sandbox.
func RunCase(ctx context.Context, e *lang.Executor, p *lang.Program, c Case, o Options) (CaseResult, error) {
	res, err := e.Runner.Run(ctx, p.JudgeSpec(caseLimits(c, o), bytes.NewReader(c.Input)))
	if err != nil {
		return CaseResult{}, err
	}
	return caseResult(c, o, res), nil
}

func caseLimits(c Case, o Options) limits.Limits {
	if c.Limits != nil {
		return *c.Limits
	}
	return o.Limits
}

func caseResult(c Case, o Options, res *sbrt.Result) CaseResult {
	cmp := o.Compare
	if cmp == nil {
		cmp = Lines{}
	}
	cr := CaseResult{
		Name: c.Name, Status: string(res.Status), ExitCode: res.ExitCode,
		TimeMS: ms(res.CPU), WallMS: ms(res.Wall), MemoryBytes: res.PeakMemory,
		Verdict: Verdict(res, c.Output, cmp),
	}
	if cr.Verdict != AC && cr.Verdict != WA {
		cr.Stderr = string(res.Stderr[:min(len(res.Stderr), 1024)])
	}
	return cr
}

// Verdict maps a run and its output to a case verdict.
func Verdict(res *sbrt.Result, want []byte, cmp Comparator) string {
	if v, ok := limitVerdict(res.Status); ok {
		return v
	}
	switch res.Status {
	case sbrt.StatusOK:
		if cmp.Equal(res.Stdout, want) {
			return AC
		}
		return WA
	default: // RE, SG, SV, FSE, XX
		return RE
	}
}

// limitVerdict is the verdict of a run stopped at one of its limits (time,
// memory, output), if it was.
func limitVerdict(s sbrt.Status) (string, bool) {
	switch s {
	case sbrt.StatusTLE:
		return TLE, true
	case sbrt.StatusMLE:
		return MLE, true
	case sbrt.StatusOLE:
		return OLE, true
	}
	return "", false
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
