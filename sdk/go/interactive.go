package soulbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/coder/websocket"
)

// InteractiveRequest is a program to run with its stdin and output
// streamed: Limits are overrides as strings, as JudgeRequest's.
type InteractiveRequest struct {
	Language string            `json:"language"`
	Source   string            `json:"source"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// InteractiveResult is how a streamed run ended. Status is the run's own
// (OK, RE, SG, TLE, MLE, OLE, FSE, SV, or CE when it did not compile);
// Verdict is OK, or the judge's verdict for a failed run (TLE, MLE, OLE,
// RE, CE). TimeMS is CPU time.
type InteractiveResult struct {
	Status          string  `json:"status"`
	Verdict         string  `json:"verdict"`
	ExitCode        int     `json:"exit_code"`
	TimeMS          float64 `json:"time_ms"`
	WallMS          float64 `json:"wall_ms"`
	MemoryBytes     int64   `json:"memory_bytes"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
}

// InteractiveEvent is output of the program (Stream "stdout" or "stderr"
// with Data) or, last, its Result.
type InteractiveEvent struct {
	Stream string
	Data   []byte
	Result *InteractiveResult
}

// InteractiveRun is a program running on the daemon (GET
// /judge/interactive): write its stdin with Write and CloseStdin, read its
// output and result with Next. Write and CloseStdin may be called while
// another goroutine calls Next; Next is for one goroutine at a time.
// Close it when done; closing before the result ends the run.
type InteractiveRun struct {
	conn *websocket.Conn
	// Compile is the compile step's report (Status OK for interpreted
	// languages). When it is not OK, the program did not run and Next
	// returns the CE result.
	Compile CompileReport
	done    bool
}

// interactiveMsg is a text message of the protocol (docs/API.md).
type interactiveMsg struct {
	Type            string  `json:"type"`
	Data            string  `json:"data"`
	DataBase64      string  `json:"data_base64"`
	Code            int     `json:"code"`
	Error           string  `json:"error"`
	Status          string  `json:"status"`
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	Verdict         string  `json:"verdict"`
	ExitCode        int     `json:"exit_code"`
	TimeMS          float64 `json:"time_ms"`
	WallMS          float64 `json:"wall_ms"`
	MemoryBytes     int64   `json:"memory_bytes"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
}

// JudgeInteractive compiles and starts a program whose stdin and output
// are streamed over a WebSocket; it returns once the compile step is done.
func (c *Client) JudgeInteractive(ctx context.Context, req InteractiveRequest) (*InteractiveRun, error) {
	h := http.Header{}
	h.Set("X-API-Key", c.apiKey)
	conn, resp, err := websocket.Dial(ctx, c.endpoint("/judge/interactive", nil), &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: h})
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, errorFromResponse(resp)
		}
		return nil, fmt.Errorf("GET /judge/interactive: %w", err)
	}
	conn.SetReadLimit(64 << 20)
	r := &InteractiveRun{conn: conn}
	b, err := json.Marshal(req)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		conn.CloseNow()
		return nil, err
	}
	m, err := r.read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	if m.Type != "compile" {
		conn.CloseNow()
		return nil, fmt.Errorf("interactive run: got a %q message, want compile", m.Type)
	}
	r.Compile = CompileReport{Status: m.Status, Stdout: m.Stdout, Stderr: m.Stderr, TimeMS: m.TimeMS}
	return r, nil
}

// Write sends p to the program's stdin.
func (r *InteractiveRun) Write(p []byte) (int, error) {
	if err := r.conn.Write(context.Background(), websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseStdin ends the program's stdin (it reads EOF once it has read
// everything sent before).
func (r *InteractiveRun) CloseStdin() error {
	return r.conn.Write(context.Background(), websocket.MessageText, []byte(`{"type":"close_stdin"}`))
}

// Next returns the next output chunk or, last, the result; io.EOF after
// the result. An error message of the daemon is returned as an error.
func (r *InteractiveRun) Next(ctx context.Context) (InteractiveEvent, error) {
	if r.done {
		return InteractiveEvent{}, io.EOF
	}
	m, err := r.read(ctx)
	if err != nil {
		return InteractiveEvent{}, err
	}
	switch m.Type {
	case "stdout", "stderr":
		data := []byte(m.Data)
		if m.DataBase64 != "" {
			if data, err = base64.StdEncoding.DecodeString(m.DataBase64); err != nil {
				return InteractiveEvent{}, fmt.Errorf("interactive run: %w", err)
			}
		}
		return InteractiveEvent{Stream: m.Type, Data: data}, nil
	case "result":
		r.done = true
		res := InteractiveResult{
			Status: m.Status, Verdict: m.Verdict, ExitCode: m.ExitCode, TimeMS: m.TimeMS, WallMS: m.WallMS,
			MemoryBytes: m.MemoryBytes, StdoutTruncated: m.StdoutTruncated, StderrTruncated: m.StderrTruncated,
		}
		r.conn.Close(websocket.StatusNormalClosure, "")
		return InteractiveEvent{Result: &res}, nil
	}
	return InteractiveEvent{}, fmt.Errorf("interactive run: unexpected %q message", m.Type)
}

// Wait reads the rest of the output into stdout and stderr (either may be
// nil) and returns the result.
func (r *InteractiveRun) Wait(ctx context.Context, stdout, stderr io.Writer) (*InteractiveResult, error) {
	for {
		ev, err := r.Next(ctx)
		if err != nil {
			return nil, err
		}
		if ev.Result != nil {
			return ev.Result, nil
		}
		if w := map[string]io.Writer{"stdout": stdout, "stderr": stderr}[ev.Stream]; w != nil {
			w.Write(ev.Data)
		}
	}
}

// Close ends the connection (and the run, if it is still going).
func (r *InteractiveRun) Close() error {
	return r.conn.CloseNow()
}

// read reads one text message; an "error" message becomes an error.
func (r *InteractiveRun) read(ctx context.Context) (interactiveMsg, error) {
	var m interactiveMsg
	typ, data, err := r.conn.Read(ctx)
	if err != nil {
		return m, fmt.Errorf("interactive run: %w", err)
	}
	if typ != websocket.MessageText {
		return m, errors.New("interactive run: unexpected binary message")
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("interactive run: %w", err)
	}
	if m.Type == "error" {
		return m, &APIError{Status: m.Code, Message: m.Error, sentinel: sentinelForStatus(m.Code)}
	}
	return m, nil
}
