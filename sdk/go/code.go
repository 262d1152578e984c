package soulbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ExecuteRequest is a program to run once on a live sandbox.
type ExecuteRequest struct {
	Language string            `json:"language"`
	Code     string            `json:"code"`
	Stdin    string            `json:"stdin,omitempty"`
	Timeout  time.Duration     `json:"-"` // of the run step; 0: the daemon's default (60 s)
	Env      map[string]string `json:"env,omitempty"`

	// OnStdout and OnStderr receive the output as it comes.
	OnStdout func(string) `json:"-"`
	OnStderr func(string) `json:"-"`
}

// CompileReport is the outcome of a compile step.
type CompileReport struct {
	Status string  `json:"status"` // OK, CE, TLE
	Stdout string  `json:"stdout,omitempty"`
	Stderr string  `json:"stderr,omitempty"`
	TimeMS float64 `json:"time_ms"`
}

// Artifact is a file an execution created or modified in its working
// directory: inline (Content, base64) when small, else a signed URL.
type Artifact struct {
	Path     string `json:"path"`
	Name     string `json:"name"`
	MimeType string `json:"mime_type"`
	Size     int64  `json:"size"`
	Content  string `json:"content,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Bytes decodes the inline content.
func (a Artifact) Bytes() ([]byte, error) { return base64.StdEncoding.DecodeString(a.Content) }

// ExecuteResult is the outcome of ExecuteCode.
type ExecuteResult struct {
	Language  string         `json:"language"`
	Status    string         `json:"status"` // OK, RE, TLE, OLE, CE
	ExitCode  int            `json:"exit_code"`
	Signal    string         `json:"signal,omitempty"`
	TimeMS    float64        `json:"time_ms"`
	Dir       string         `json:"dir"`
	Stdout    string         `json:"stdout"`
	Stderr    string         `json:"stderr"`
	Compile   *CompileReport `json:"compile,omitempty"`
	Artifacts []Artifact     `json:"artifacts"`
}

type executeEvent struct {
	Type     string         `json:"type"`
	Text     string         `json:"text"`
	Message  string         `json:"message"`
	Compile  *CompileReport `json:"compile"`
	Artifact *Artifact      `json:"artifact"`
	Result   *ExecuteResult `json:"result"`
}

// maxEventLine caps one line of an execution stream.
const maxEventLine = 64 << 20

// stream posts a JSON body and calls line for each NDJSON line.
func (c *Client) stream(ctx context.Context, p string, in any, line func([]byte) error) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(p, nil), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	req.Header.Set("X-API-Key", c.apiKey)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFromResponse(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEventLine)
	for sc.Scan() {
		if err := line(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("POST %s: reading the stream: %w", p, err)
	}
	return nil
}

// ExecuteCode runs a program once in the sandbox: compiled languages
// compile first (a failure is Status "CE" with the compiler's output in
// Compile); the output streams to OnStdout/OnStderr; files the program
// writes in its working directory come back as Artifacts.
func (s *Sandbox) ExecuteCode(ctx context.Context, req ExecuteRequest) (*ExecuteResult, error) {
	body := struct {
		ExecuteRequest
		Timeout float64 `json:"timeout,omitempty"`
	}{req, req.Timeout.Seconds()}
	var res *ExecuteResult
	var out, errb strings.Builder
	var arts []Artifact
	err := s.client.stream(ctx, "/sandboxes/"+url.PathEscape(s.ID)+"/execute", body, func(line []byte) error {
		var ev executeEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("execute: bad event: %w", err)
		}
		switch ev.Type {
		case "stdout":
			out.WriteString(ev.Text)
			if req.OnStdout != nil {
				req.OnStdout(ev.Text)
			}
		case "stderr":
			errb.WriteString(ev.Text)
			if req.OnStderr != nil {
				req.OnStderr(ev.Text)
			}
		case "artifact":
			if ev.Artifact != nil {
				arts = append(arts, *ev.Artifact)
			}
		case "result":
			res = ev.Result
		case "error":
			return fmt.Errorf("execute: %s", ev.Message)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, fmt.Errorf("execute: the stream ended without a result")
	}
	res.Stdout, res.Stderr = out.String(), errb.String()
	if res.Artifacts == nil {
		res.Artifacts = arts
	}
	return res, nil
}

// CodeContext is a stateful code interpreter context in a sandbox: a
// kernel that keeps variables, imports and files between executions.
type CodeContext struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
	Alive    bool   `json:"alive"`

	sbx *Sandbox
}

// Result is a value an execution displays: the last expression's value
// (IsMainResult) or a figure. PNG and JPEG are base64.
type Result struct {
	IsMainResult bool            `json:"is_main_result"`
	Text         string          `json:"text,omitempty"`
	HTML         string          `json:"html,omitempty"`
	Markdown     string          `json:"markdown,omitempty"`
	SVG          string          `json:"svg,omitempty"`
	LaTeX        string          `json:"latex,omitempty"`
	PNG          string          `json:"png,omitempty"`
	JPEG         string          `json:"jpeg,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"`
}

// ExecutionError is an exception raised by code in a context.
type ExecutionError struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

func (e *ExecutionError) Error() string { return e.Name + ": " + e.Value }

// Execution is the outcome of CodeContext.Run.
type Execution struct {
	Stdout         []string
	Stderr         []string
	Results        []Result
	Error          *ExecutionError // nil when the code raised nothing
	ExecutionCount int
}

// Text is the main result's text, if any.
func (e *Execution) Text() string {
	for _, r := range e.Results {
		if r.IsMainResult {
			return r.Text
		}
	}
	return ""
}

// RunOptions configure one execution in a context.
type RunOptions struct {
	Timeout  time.Duration // 0: none; past it the execution is interrupted
	OnStdout func(string)
	OnStderr func(string)
	OnResult func(Result)
	OnError  func(ExecutionError)
}

// CreateCodeContext starts a context for language ("python" or
// "javascript") in cwd ("" : the user's home).
func (s *Sandbox) CreateCodeContext(ctx context.Context, language, cwd string) (*CodeContext, error) {
	c := &CodeContext{sbx: s}
	if _, err := s.client.do(ctx, http.MethodPost, s.contextsPath(""), nil, map[string]string{"language": language, "cwd": cwd}, c); err != nil {
		return nil, err
	}
	return c, nil
}

// CodeContexts lists the sandbox's contexts.
func (s *Sandbox) CodeContexts(ctx context.Context) ([]*CodeContext, error) {
	var cs []*CodeContext
	if _, err := s.client.do(ctx, http.MethodGet, s.contextsPath(""), nil, nil, &cs); err != nil {
		return nil, err
	}
	for _, c := range cs {
		c.sbx = s
	}
	return cs, nil
}

func (s *Sandbox) contextsPath(cid string) string {
	p := "/sandboxes/" + url.PathEscape(s.ID) + "/contexts"
	if cid != "" {
		p += "/" + url.PathEscape(cid)
	}
	return p
}

// Restart replaces the context's kernel with a fresh one (state is lost).
func (c *CodeContext) Restart(ctx context.Context) error {
	_, err := c.sbx.client.do(ctx, http.MethodPost, c.sbx.contextsPath(c.ID)+"/restart", nil, nil, nil)
	return err
}

// Interrupt stops the running execution, if any.
func (c *CodeContext) Interrupt(ctx context.Context) error {
	_, err := c.sbx.client.do(ctx, http.MethodPost, c.sbx.contextsPath(c.ID)+"/interrupt", nil, nil, nil)
	return err
}

// Delete ends the context.
func (c *CodeContext) Delete(ctx context.Context) error {
	_, err := c.sbx.client.do(ctx, http.MethodDelete, c.sbx.contextsPath(c.ID), nil, nil, nil)
	return err
}

type contextEvent struct {
	Type           string          `json:"type"`
	Text           string          `json:"text"`
	Result         *Result         `json:"result"`
	Error          *ExecutionError `json:"error"`
	ExecutionCount int             `json:"execution_count"`
}

// Run executes code in the context, streaming its events to opts'
// callbacks. An exception in the code is Execution.Error, not an error.
func (c *CodeContext) Run(ctx context.Context, code string, opts RunOptions) (*Execution, error) {
	body := map[string]any{"code": code}
	if opts.Timeout > 0 {
		body["timeout"] = opts.Timeout.Seconds()
	}
	ex := &Execution{}
	ended := false
	err := c.sbx.client.stream(ctx, c.sbx.contextsPath(c.ID)+"/execute", body, func(line []byte) error {
		var ev contextEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("execute: bad event: %w", err)
		}
		switch ev.Type {
		case "stdout":
			ex.Stdout = append(ex.Stdout, ev.Text)
			if opts.OnStdout != nil {
				opts.OnStdout(ev.Text)
			}
		case "stderr":
			ex.Stderr = append(ex.Stderr, ev.Text)
			if opts.OnStderr != nil {
				opts.OnStderr(ev.Text)
			}
		case "result":
			if ev.Result != nil {
				ex.Results = append(ex.Results, *ev.Result)
				if opts.OnResult != nil {
					opts.OnResult(*ev.Result)
				}
			}
		case "error":
			ex.Error = ev.Error
			if opts.OnError != nil && ev.Error != nil {
				opts.OnError(*ev.Error)
			}
		case "end":
			ended = true
			ex.ExecutionCount = ev.ExecutionCount
			if ev.Error != nil {
				return fmt.Errorf("execute: %s", ev.Error.Value)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !ended {
		return nil, fmt.Errorf("execute: the stream ended early")
	}
	return ex, nil
}
