package codeinterp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/execute"
)

// execRequest is the body of POST /execute.
type execRequest struct {
	Code      string            `json:"code"`
	ContextID string            `json:"context_id"`
	Language  string            `json:"language"`
	EnvVars   map[string]string `json:"env_vars"`
}

// The lines of an execution's stream, one JSON object a line, in E2B's
// field names. The stream ends with number_of_executions (when the kernel
// finished the execution) and end_of_execution.
type (
	logLine struct {
		Type      string `json:"type"` // stdout or stderr
		Text      string `json:"text"`
		Timestamp string `json:"timestamp"` // RFC 3339, as E2B sends it
	}
	resultLine struct {
		Type         string          `json:"type"` // result
		Text         string          `json:"text,omitempty"`
		HTML         string          `json:"html,omitempty"`
		Markdown     string          `json:"markdown,omitempty"`
		SVG          string          `json:"svg,omitempty"`
		PNG          string          `json:"png,omitempty"`
		JPEG         string          `json:"jpeg,omitempty"`
		LaTeX        string          `json:"latex,omitempty"`
		Data         json.RawMessage `json:"data,omitempty"`
		IsMainResult bool            `json:"is_main_result"`
	}
	errorLine struct {
		Type      string `json:"type"` // error
		Name      string `json:"name"`
		Value     string `json:"value"`
		Traceback string `json:"traceback"`
	}
	countLine struct {
		Type           string `json:"type"` // number_of_executions
		ExecutionCount int    `json:"execution_count"`
	}
	endLine struct {
		Type string `json:"type"` // end_of_execution
	}
)

func (s *Server) execute(w http.ResponseWriter, r *http.Request) {
	sb := sandboxOf(r)
	var body execRequest
	if err := decode(w, r, &body); err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	if body.ContextID != "" && body.Language != "" {
		s.cfg.WriteError(w, fmt.Errorf("%w: only one of context_id or language can be provided", ErrBadRequest))
		return
	}
	if !sb.CanExecute {
		s.cfg.WriteError(w, ErrUnauthorized)
		return
	}
	if err := execute.CheckExecution(body.Code, body.EnvVars); err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	k, err := s.kernel(r.Context(), sb, body.ContextID, body.Language)
	if err == nil && !k.Info().Alive {
		// Jupyter restarts a kernel that died; so does SoulBox, on use.
		err = k.Restart(r.Context())
	}
	if err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	// The header goes out now: the SDKs' request timeout runs until it
	// arrives, their execution timeout after.
	st := &stream{w: w, rc: http.NewResponseController(w), now: s.cfg.Now}
	st.start()
	err = k.ExecuteEnv(r.Context(), body.Code, body.EnvVars, 0, st.event)
	if r.Context().Err() != nil {
		return // the client went away (its timeout); the kernel was interrupted
	}
	if !st.hasEnded() {
		if err != nil && !st.hasError() { // a kernel that died mid-run has said so
			name := "SoulBoxError"
			if errors.Is(err, execute.ErrKernelDead) {
				name = "KernelDied"
			}
			st.send(errorLine{Type: "error", Name: name, Value: err.Error(), Traceback: err.Error()})
		}
		st.send(endLine{Type: "end_of_execution"})
	}
}

// stream writes an execution's lines, flushing each. It is safe for
// concurrent use (a kernel's events and the handler's own lines).
type stream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	now func() time.Time

	mu      sync.Mutex
	ended   bool
	errored bool // an error line was sent
	broken  bool
}

// start sends the 200 header.
func (st *stream) start() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.w.Header().Set("Content-Type", "application/x-ndjson")
	st.w.Header().Set("X-Content-Type-Options", "nosniff")
	st.w.WriteHeader(http.StatusOK)
	if err := st.rc.Flush(); err != nil {
		st.broken = true
	}
}

func (st *stream) hasEnded() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ended
}

func (st *stream) hasError() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.errored
}

func (st *stream) send(v any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return
	}
	switch v.(type) {
	case endLine:
		st.ended = true
	case errorLine:
		st.errored = true
	}
	if st.broken {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		return // every line type marshals
	}
	if _, err := st.w.Write(append(b, '\n')); err != nil {
		st.broken = true
		return
	}
	if err := st.rc.Flush(); err != nil {
		st.broken = true
	}
}

// event translates one context event into the protocol's lines.
func (st *stream) event(ev execute.ContextEvent) {
	switch ev.Type {
	case "stdout", "stderr":
		st.send(logLine{Type: ev.Type, Text: ev.Text, Timestamp: st.now().UTC().Format(time.RFC3339Nano)})
	case "result":
		if ev.Result != nil {
			st.send(resultOf(ev.Result))
		}
	case "error":
		if e := ev.Error; e != nil {
			st.send(errorLine{Type: "error", Name: e.Name, Value: e.Value, Traceback: e.Traceback})
		}
	case "end":
		if e := ev.Error; e != nil {
			st.send(errorLine{Type: "error", Name: e.Name, Value: e.Value, Traceback: e.Traceback})
		}
		st.send(countLine{Type: "number_of_executions", ExecutionCount: ev.ExecutionCount})
		st.send(endLine{Type: "end_of_execution"})
	}
}

// resultOf maps a kernel result to E2B's result fields. As E2B's server
// does, a text that is a quoted string's repr loses its quotes; a pandas
// DataFrame's data is {column: [values]}.
func resultOf(r *execute.KernelResult) resultLine {
	return resultLine{
		Type: "result", Text: unquote(r.Text), HTML: r.HTML, Markdown: r.Markdown, SVG: r.SVG,
		PNG: r.PNG, JPEG: r.JPEG, LaTeX: r.LaTeX, Data: columnsOf(r.Data), IsMainResult: r.IsMainResult,
	}
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// columnsOf turns a table in pandas' "split" shape ({columns, index,
// data}) into E2B's {column: [values]}; anything else is dropped.
func columnsOf(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var split struct {
		Columns []json.RawMessage   `json:"columns"`
		Data    [][]json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &split) != nil || split.Columns == nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range split.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		var name string
		if json.Unmarshal(c, &name) != nil {
			name = string(c) // a number or other non-string label
		}
		key, _ := json.Marshal(name)
		b.Write(key)
		b.WriteString(":[")
		for j, row := range split.Data {
			if j > 0 {
				b.WriteByte(',')
			}
			if i < len(row) {
				b.Write(row[i])
			} else {
				b.WriteString("null")
			}
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes()
}
