package soulbox

import (
	"context"
	"net/http"
)

// JudgeTest is one test case: the program's stdin and the expected stdout.
type JudgeTest struct {
	Name     string            `json:"name,omitempty"`
	Stdin    string            `json:"stdin"`
	Expected string            `json:"expected"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// JudgeRequest is a submission: compiled once, each test run as a fresh
// process with its own limits in a worker sandbox cleaned between tests
// (FreshSandboxes: a sandbox of its own per test). Limits are overrides as
// strings ("memory": "50MB", "cpus": "0.1", "timeout": "5s", "cpu-time",
// "output-limit", ...). Compare is exact, lines (default), tokens or
// float:EPS. Parallel tests run at once (1-8; 0 means 1).
type JudgeRequest struct {
	Language       string            `json:"language"`
	Source         string            `json:"source"`
	Limits         map[string]string `json:"limits,omitempty"`
	Compare        string            `json:"compare,omitempty"`
	Tests          []JudgeTest       `json:"tests"`
	Parallel       int               `json:"parallel,omitempty"`
	FreshSandboxes bool              `json:"fresh_sandboxes,omitempty"`
	// Interactor makes the problem interactive: each test runs the
	// submission against it, the submission's stdout being its stdin and
	// its stdout the submission's stdin. A test's Stdin is the
	// interactor's input.txt, Expected its answer.txt (both in its home
	// directory; it is called with the arguments input.txt output.txt
	// answer.txt, as testlib's interactors are). Its exit status decides:
	// 0 AC, 1 WA, 2 PE; anything else, a signal or a limit of its own is
	// JE (judge error). The submission's TLE, MLE and OLE come first.
	Interactor *JudgeInteractor `json:"interactor,omitempty"`
}

// JudgeInteractor is the interactor of an interactive problem. Limits are
// overrides of the daemon's defaults (not of the submission's limits);
// keep its timeout above the submission's, so a deadlock is the
// submission's TLE.
type JudgeInteractor struct {
	Language string            `json:"language"`
	Source   string            `json:"source"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// JudgeInteractorRun is how the interactor's run of a test ended; Stderr
// (its first KiB) is its comment.
type JudgeInteractorRun struct {
	Status      string  `json:"status"`
	ExitCode    int     `json:"exit_code"`
	TimeMS      float64 `json:"time_ms"`
	WallMS      float64 `json:"wall_ms"`
	MemoryBytes int64   `json:"memory_bytes"`
	Stderr      string  `json:"stderr,omitempty"`
}

// JudgeCase is the verdict of one test.
type JudgeCase struct {
	Name        string  `json:"name"`
	Verdict     string  `json:"verdict"` // AC, WA, TLE, MLE, RE, OLE; PE, JE (interactive)
	Status      string  `json:"status"`
	ExitCode    int     `json:"exit_code"`
	TimeMS      float64 `json:"time_ms"`
	WallMS      float64 `json:"wall_ms"`
	MemoryBytes int64   `json:"memory_bytes"`
	Stderr      string  `json:"stderr,omitempty"`
	// Interactor is the interactor's run (interactive problems).
	Interactor *JudgeInteractorRun `json:"interactor,omitempty"`
}

// JudgeReport is the outcome of a submission: Verdict is the first
// non-AC case's (or CE).
type JudgeReport struct {
	Verdict string         `json:"verdict"`
	Compile *CompileReport `json:"compile,omitempty"`
	Cases   []JudgeCase    `json:"cases"`
	Error   string         `json:"error,omitempty"` // batch only
}

// Judge runs a submission against its tests.
func (c *Client) Judge(ctx context.Context, req JudgeRequest) (*JudgeReport, error) {
	var rep JudgeReport
	if _, err := c.do(ctx, http.MethodPost, "/judge", nil, req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// JudgeBatch runs many submissions; one that cannot be judged has Error
// set in its report.
func (c *Client) JudgeBatch(ctx context.Context, reqs []JudgeRequest) ([]JudgeReport, error) {
	var out struct {
		Results []JudgeReport `json:"results"`
	}
	in := map[string]any{"submissions": reqs}
	if _, err := c.do(ctx, http.MethodPost, "/judge/batch", nil, in, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}
