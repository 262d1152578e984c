package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/soulbox-dev/soulbox/internal/judge"
	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
)

// Caps of judge requests.
const (
	maxJudgeCases       = 1000
	maxJudgeSubmissions = 100
	maxJudgeParallel    = 8
	judgeBatchParallel  = 2
)

// judgeCase is one test case of a judge request.
type judgeCase struct {
	Name     string          `json:"name"`
	Stdin    string          `json:"stdin"`
	Expected string          `json:"expected"`
	Limits   json.RawMessage `json:"limits,omitempty"` // overrides, as the submission's
}

// judgeRequest is one submission: POST /judge, or an item of a batch.
type judgeRequest struct {
	Language string `json:"language"`
	Source   string `json:"source"`
	// Limits are overrides of the defaults as strings, the keys of
	// `soulbox judge`'s limits files: memory, cpus, cpu-time, timeout,
	// output-limit, disk, file-size, stack, pids, open-files.
	Limits  json.RawMessage `json:"limits,omitempty"`
	Compare string          `json:"compare,omitempty"` // exact, lines (default), tokens, float:EPS
	Tests   []judgeCase     `json:"tests"`
	// Parallel cases run at once (1 to maxJudgeParallel; default 1).
	Parallel int `json:"parallel,omitempty"`
	// FreshSandboxes: every case in a sandbox of its own rather than in
	// a worker sandbox cleaned between cases.
	FreshSandboxes bool `json:"fresh_sandboxes,omitempty"`
	// Interactor makes the problem interactive: a test's stdin is the
	// interactor's input.txt and expected its answer.txt.
	Interactor *interactorRequest `json:"interactor,omitempty"`
}

// interactorRequest is the interactor of an interactive problem. Its
// limits are overrides of the defaults (not of the submission's).
type interactorRequest struct {
	Language string          `json:"language"`
	Source   string          `json:"source"`
	Limits   json.RawMessage `json:"limits,omitempty"`
}

// judgeReport is the answer for one submission.
type judgeReport struct {
	Verdict string             `json:"verdict,omitempty"` // empty only with Error
	Compile *compileOut        `json:"compile,omitempty"`
	Cases   []judge.CaseResult `json:"cases"`
	Error   string             `json:"error,omitempty"` // batch items only: why it could not be judged
}

type compileOut struct {
	Status string  `json:"status"`
	Stdout string  `json:"stdout,omitempty"`
	Stderr string  `json:"stderr,omitempty"`
	TimeMS float64 `json:"time_ms"`
	Cached bool    `json:"cached"`
}

// prepare checks a submission and turns it into the judge's terms.
func (s *Server) prepareJudge(j judgeRequest) (*lang.Language, []judge.Case, judge.Options, error) {
	var o judge.Options
	l, ok := lang.Lookup(j.Language)
	if !ok {
		return nil, nil, o, fmt.Errorf("%w: unknown language %q", errBadRequest, j.Language)
	}
	if len(j.Tests) == 0 || len(j.Tests) > maxJudgeCases {
		return nil, nil, o, fmt.Errorf("%w: 1-%d tests are required", errBadRequest, maxJudgeCases)
	}
	max := s.cfg.MaxLimits
	if max == (limits.Limits{}) {
		max = limits.Maximums()
	}
	base := limits.Defaults()
	var err error
	if present(j.Limits) {
		if base, err = judge.ParseLimits(j.Limits, base); err != nil {
			return nil, nil, o, fmt.Errorf("%w: limits: %v", errBadRequest, err)
		}
	}
	if err := base.Validate(max); err != nil {
		return nil, nil, o, err
	}
	o.Limits = base
	if j.Parallel < 0 || j.Parallel > maxJudgeParallel {
		return nil, nil, o, fmt.Errorf("%w: parallel must be 1-%d", errBadRequest, maxJudgeParallel)
	}
	o.Parallel, o.FreshSandboxes = j.Parallel, j.FreshSandboxes
	if j.Compare != "" {
		if o.Compare, err = judge.ParseCompare(j.Compare); err != nil {
			return nil, nil, o, fmt.Errorf("%w: compare: %v", errBadRequest, err)
		}
	}
	if it := j.Interactor; it != nil {
		il, ok := lang.Lookup(it.Language)
		if !ok {
			return nil, nil, o, fmt.Errorf("%w: interactor: unknown language %q", errBadRequest, it.Language)
		}
		lim := limits.Defaults()
		if present(it.Limits) {
			if lim, err = judge.ParseLimits(it.Limits, lim); err != nil {
				return nil, nil, o, fmt.Errorf("%w: interactor: limits: %v", errBadRequest, err)
			}
		}
		if err := lim.Validate(max); err != nil {
			return nil, nil, o, fmt.Errorf("interactor: %w", err)
		}
		o.Interactor = &judge.Interactor{Lang: il, Source: []byte(it.Source), Limits: lim}
	}
	cases := make([]judge.Case, len(j.Tests))
	for i, t := range j.Tests {
		c := judge.Case{Name: t.Name, Input: []byte(t.Stdin), Output: []byte(t.Expected)}
		if c.Name == "" {
			c.Name = fmt.Sprint(i + 1)
		}
		if present(t.Limits) {
			cl, err := judge.ParseLimits(t.Limits, base)
			if err != nil {
				return nil, nil, o, fmt.Errorf("%w: test %s: limits: %v", errBadRequest, c.Name, err)
			}
			if err := cl.Validate(max); err != nil {
				return nil, nil, o, err
			}
			c.Limits = &cl
		}
		cases[i] = c
	}
	return l, cases, o, nil
}

func (s *Server) runJudge(ctx context.Context, j judgeRequest) (*judgeReport, error) {
	if s.cfg.Executor == nil {
		return nil, fmt.Errorf("%w: this daemon does not judge", errUnsupported)
	}
	l, cases, o, err := s.prepareJudge(j)
	if err != nil {
		return nil, err
	}
	rep, err := judge.Judge(ctx, s.cfg.Executor, l, []byte(j.Source), cases, o)
	if err != nil {
		return nil, err
	}
	out := &judgeReport{Verdict: rep.Verdict, Cases: rep.Cases}
	if out.Cases == nil {
		out.Cases = []judge.CaseResult{}
	}
	if c := rep.Compile; c != nil {
		out.Compile = &compileOut{Status: c.Status, Stdout: c.Stdout, Stderr: c.Stderr, TimeMS: float64(c.Duration.Microseconds()) / 1000, Cached: c.Cached}
	}
	return out, nil
}

// judgeOne serves POST /judge: one submission, its cases in worker
// sandboxes of the daemon's own (not a live sandbox of the caller).
func (s *Server) judgeOne(w http.ResponseWriter, r *http.Request) {
	var j judgeRequest
	if err := decodeCodeBody(w, r, &j); err != nil {
		s.writeErr(w, err)
		return
	}
	rep, err := s.runJudge(r.Context(), j)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// judgeBatch serves POST /judge/batch: many submissions, judged two at a
// time; a submission that cannot be judged has its error in its report.
func (s *Server) judgeBatch(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Submissions []judgeRequest `json:"submissions"`
	}
	if err := decodeCodeBody(w, r, &b); err != nil {
		s.writeErr(w, err)
		return
	}
	out, err := s.runJudgeBatch(r.Context(), b.Submissions)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": out})
}

// runJudgeBatch judges submissions two at a time, for the REST and gRPC
// handlers alike, and returns their reports in order.
func (s *Server) runJudgeBatch(ctx context.Context, subs []judgeRequest) ([]*judgeReport, error) {
	if len(subs) == 0 || len(subs) > maxJudgeSubmissions {
		return nil, fmt.Errorf("%w: 1-%d submissions are required", errBadRequest, maxJudgeSubmissions)
	}
	out := make([]*judgeReport, len(subs))
	sem := make(chan struct{}, judgeBatchParallel)
	var wg sync.WaitGroup
	for i, j := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rep, err := s.runJudge(ctx, j)
			if err != nil {
				rep = &judgeReport{Cases: []judge.CaseResult{}, Error: err.Error()}
			}
			out[i] = rep
		}()
	}
	wg.Wait()
	return out, nil
}
