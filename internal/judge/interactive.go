package judge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Files the interactor finds in its home directory, and receives as
// argv[1], argv[2] and argv[3] in this order (testlib's interactor
// arguments: input, output, answer).
const (
	InputFile  = "input.txt"  // the case's input
	OutputFile = "output.txt" // not created; the interactor may write it (ignored)
	AnswerFile = "answer.txt" // the case's expected output (empty if none)
)

// Interactor exit codes, as testlib's: anything else (testlib's FAIL is
// 3), a signal or a limit of the interactor's own is a judge error (JE).
const (
	InteractorAccept       = 0 // AC
	InteractorWrongAnswer  = 1 // WA
	InteractorPresentation = 2 // PE
)

// ErrInteractor is wrapped when the interactor cannot be used (it does not
// compile): the problem's fault, not the submission's.
var ErrInteractor = errors.New("interactor unusable")

// Interactor is the program an interactive problem's submission talks to:
// the submission's stdout is its stdin and its stdout the submission's
// stdin. Each runs in a sandbox of its own with its own limits.
type Interactor struct {
	Lang   *lang.Language
	Source []byte
	// Limits are the interactor's own. Keep its wall time above the
	// submission's, so a deadlock (both reading) is the submission's TLE.
	Limits limits.Limits
}

// RunInfo is how the interactor's run of a case ended.
type RunInfo struct {
	Status      string  `json:"status"`
	ExitCode    int     `json:"exit_code"`
	TimeMS      float64 `json:"time_ms"`
	WallMS      float64 `json:"wall_ms"`
	MemoryBytes int64   `json:"memory_bytes"`
	Stderr      string  `json:"stderr,omitempty"` // first KiB: its comment
}

// prepareInteractor compiles the interactor; a compile failure is
// ErrInteractor.
func prepareInteractor(ctx context.Context, e *lang.Executor, it *Interactor) (*lang.Program, error) {
	p, err := e.Prepare(ctx, it.Lang, it.Source)
	if err != nil {
		return nil, fmt.Errorf("interactor: %w", err)
	}
	if !p.OK() {
		out := p.Compile.Stderr + p.Compile.Stdout
		return nil, fmt.Errorf("%w: it does not compile (%s): %s", ErrInteractor, p.Compile.Status, out[:min(len(out), 2048)])
	}
	return p, nil
}

// runInteractive runs one case of an interactive problem: the submission
// and the interactor at once, each in a fresh sandbox, their standard
// streams crossed through two Relays. Nothing on the host waits for a
// program: a relay's writer (the runtime's output capture) never blocks,
// the capture's output limit bounds what a relay holds, and each relay
// is closed on both sides as soon as its producer's or consumer's run
// returns. A deadlock (both reading) ends at the first wall limit.
func runInteractive(ctx context.Context, e *lang.Executor, sub, inter *lang.Program, il limits.Limits, c Case, o Options) (CaseResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	toInter, toSub := NewRelay(0), NewRelay(0)

	subSpec := sub.JudgeSpec(caseLimits(c, o), toSub)
	subSpec.Stdout = toInter
	intSpec := inter.JudgeSpec(il, toInter)
	intSpec.Stdout = toSub
	intSpec.Argv = append(slices.Clip(intSpec.Argv), InputFile, OutputFile, AnswerFile)
	intSpec.CopyIn = append(slices.Clip(intSpec.CopyIn),
		sbrt.CopyIn{Name: InputFile, Data: c.Input, Mode: 0o644},
		sbrt.CopyIn{Name: AnswerFile, Data: c.Output, Mode: 0o644})

	var (
		wg         sync.WaitGroup
		ires, sres *sbrt.Result
		ierr, serr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ires, ierr = e.Runner.Run(ctx, intSpec)
		toSub.CloseWrite()
		toInter.CloseRead()
		if ierr != nil {
			cancel()
		}
	}()
	sres, serr = e.Runner.Run(ctx, subSpec)
	toInter.CloseWrite()
	toSub.CloseRead()
	if serr != nil {
		cancel()
	}
	wg.Wait()
	if serr != nil {
		return CaseResult{}, serr
	}
	if ierr != nil {
		return CaseResult{}, fmt.Errorf("interactor: %w", ierr)
	}
	cr := CaseResult{
		Name: c.Name, Status: string(sres.Status), ExitCode: sres.ExitCode,
		TimeMS: ms(sres.CPU), WallMS: ms(sres.Wall), MemoryBytes: sres.PeakMemory,
		Verdict: InteractiveVerdict(sres, ires),
		Interactor: &RunInfo{
			Status: string(ires.Status), ExitCode: ires.ExitCode,
			TimeMS: ms(ires.CPU), WallMS: ms(ires.Wall), MemoryBytes: ires.PeakMemory,
			Stderr: string(ires.Stderr[:min(len(ires.Stderr), 1024)]),
		},
	}
	if cr.Verdict != AC && cr.Verdict != WA && cr.Verdict != PE {
		cr.Stderr = string(sres.Stderr[:min(len(sres.Stderr), 1024)])
	}
	return cr, nil
}

// InteractiveVerdict maps the two runs of an interactive case to a
// verdict. The submission's own limits come first (TLE, MLE, OLE: an
// interactor left waiting for it fails too, not by its fault); then an
// interactor that failed (a signal, a limit, an exit code other than 0, 1
// or 2) is JE, whatever the submission did after losing its partner; then
// the submission's runtime error (RE); then the interactor's exit code:
// 0 AC, 1 WA, 2 PE.
func InteractiveVerdict(sub, inter *sbrt.Result) string {
	if v, ok := limitVerdict(sub.Status); ok {
		return v
	}
	code := -1
	switch inter.Status {
	case sbrt.StatusOK:
		code = 0
	case sbrt.StatusRE:
		code = inter.ExitCode
	}
	if code != InteractorAccept && code != InteractorWrongAnswer && code != InteractorPresentation {
		return JE
	}
	if sub.Status != sbrt.StatusOK {
		return RE
	}
	switch code {
	case InteractorAccept:
		return AC
	case InteractorWrongAnswer:
		return WA
	default:
		return PE
	}
}
