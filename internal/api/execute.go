package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/sdk/go/filesig"
)

// maxCodeBody caps the bodies of execute requests (code and stdin).
const maxCodeBody = 20 << 20

// artifactURLTTL is how long a large artifact's signed URL is valid.
const artifactURLTTL = time.Hour

func decodeCodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCodeBody))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: a JSON body is required", errBadRequest)
		}
		return fmt.Errorf("%w: malformed JSON body: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON body", errBadRequest)
	}
	return nil
}

// runningTarget authorizes the key's team for the sandbox of the request's
// path and returns it, running.
func (s *Server) runningTarget(r *http.Request) (sandbox.Target, error) {
	return s.runningSandbox(teamOf(r), r.PathValue("id"))
}

// runningSandbox authorizes team for sandbox id and returns it, running.
func (s *Server) runningSandbox(team, id string) (sandbox.Target, error) {
	if _, err := s.cfg.Manager.Get(team, id); err != nil {
		return sandbox.Target{}, err
	}
	t, ok := s.cfg.Manager.Target(id)
	if !ok {
		return sandbox.Target{}, fmt.Errorf("%w: %s", sandbox.ErrNotFound, id)
	}
	if t.State != sandbox.Running {
		return sandbox.Target{}, fmt.Errorf("%w: sandbox %s is %s: resume it first", sandbox.ErrConflict, id, t.State)
	}
	return t, nil
}

// wantsJSON reports whether the client asked for one JSON answer instead
// of the NDJSON stream.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "ndjson")
}

// ndjson writes one JSON value a line, flushing each.
type ndjson struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
	ok bool
}

func newNDJSON(w http.ResponseWriter) *ndjson {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return &ndjson{w: w, rc: http.NewResponseController(w), ok: true}
}

func (n *ndjson) send(v any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.ok {
		return
	}
	b, _ := json.Marshal(v)
	if _, err := n.w.Write(append(b, '\n')); err != nil {
		n.ok = false
		return
	}
	_ = n.rc.Flush()
}

// executeCode serves POST /sandboxes/{id}/execute.
func (s *Server) executeCode(w http.ResponseWriter, r *http.Request) {
	t, err := s.runningTarget(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var req execute.Request
	if err := decodeCodeBody(w, r, &req); err != nil {
		s.writeErr(w, err)
		return
	}
	req.Template = t.Template
	if _, _, err := req.Validate(); err != nil {
		s.writeErr(w, err)
		return
	}
	if wantsJSON(r) {
		var out, errb strings.Builder
		res, err := s.runExecute(r.Context(), t, requestOrigin(r), req, func(ev execute.Event) {
			switch ev.Type {
			case "stdout":
				out.WriteString(ev.Text)
			case "stderr":
				errb.WriteString(ev.Text)
			}
		})
		if err != nil {
			s.writeErr(w, err)
			return
		}
		res.Stdout, res.Stderr = out.String(), errb.String()
		writeJSON(w, http.StatusOK, res)
		return
	}
	nd := newNDJSON(w)
	if _, err := s.runExecute(r.Context(), t, requestOrigin(r), req, func(ev execute.Event) { nd.send(ev) }); err != nil {
		nd.send(map[string]string{"type": "error", "message": err.Error()})
	}
	nd.send(execute.Event{Type: "end"})
}

// runExecute runs an execute_code request on the running sandbox t, for
// the REST and gRPC handlers alike; emit receives the events in order.
// origin (scheme://host, as the client addressed the daemon) is where large
// artifacts' signed download URLs point.
func (s *Server) runExecute(ctx context.Context, t sandbox.Target, origin string, req execute.Request, emit func(execute.Event)) (*execute.Result, error) {
	opts := execute.Options{InlineMax: s.cfg.InlineArtifactMax, Sign: s.artifactSigner(origin, t)}
	return execute.Execute(ctx, execute.NewAgent(t.Box.HTTPClient(false)), req, opts, emit)
}

// requestOrigin is scheme://host of the address the client used.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// artifactSigner makes signed download URLs on origin.
func (s *Server) artifactSigner(origin string, t sandbox.Target) func(string) string {
	return func(p string) string {
		exp := s.cfg.Now().Add(artifactURLTTL)
		q := url.Values{}
		q.Set("path", p)
		q.Set("username", execute.User)
		q.Set("signature", filesig.Sign(p, filesig.Read, execute.User, t.AccessToken, exp))
		q.Set("signature_expiration", strconv.FormatInt(exp.Unix(), 10))
		q.Set(querySandboxID, t.ID)
		return origin + "/files?" + q.Encode()
	}
}

// newContext is the body of POST /sandboxes/{id}/contexts.
type newContext struct {
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

func (s *Server) createContext(w http.ResponseWriter, r *http.Request) {
	t, err := s.runningTarget(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var body newContext
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeErr(w, err)
		return
	}
	if body.Language == "" {
		body.Language = "python"
	}
	k, err := s.contexts.Create(r.Context(), t.ID, execute.NewAgent(t.Box.HTTPClient(false)), body.Language, body.Cwd)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, k.Info())
}

func (s *Server) listContexts(w http.ResponseWriter, r *http.Request) {
	t, err := s.runningTarget(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	infos, err := s.contexts.List(r.Context(), t.ID, execute.NewAgent(t.Box.HTTPClient(false)))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, infos)
}

func (s *Server) kernelOf(r *http.Request) (*execute.Kernel, error) {
	t, err := s.runningTarget(r)
	if err != nil {
		return nil, err
	}
	return s.contexts.Get(r.Context(), t.ID, execute.NewAgent(t.Box.HTTPClient(false)), r.PathValue("cid"))
}

func (s *Server) restartContext(w http.ResponseWriter, r *http.Request) {
	k, err := s.kernelOf(r)
	if err == nil {
		err = k.Restart(r.Context())
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, k.Info())
}

func (s *Server) interruptContext(w http.ResponseWriter, r *http.Request) {
	k, err := s.kernelOf(r)
	if err == nil {
		err = k.Interrupt(r.Context())
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deleteContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.cfg.Manager.Get(teamOf(r), id); err != nil {
		s.writeErr(w, err)
		return
	}
	// A paused sandbox's agent cannot answer: only the contexts known
	// already can be deleted then.
	var a *execute.Agent
	if t, ok := s.cfg.Manager.Target(id); ok && t.State == sandbox.Running {
		a = execute.NewAgent(t.Box.HTTPClient(false))
	}
	if err := s.contexts.Delete(r.Context(), id, a, r.PathValue("cid")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// contextExecution is the body of POST .../contexts/{cid}/execute.
type contextExecution struct {
	Code    string  `json:"code"`
	Timeout float64 `json:"timeout"` // seconds; 0: none
}

// contextResult is the single-JSON answer of a context execution.
type contextResult struct {
	Stdout         []string                `json:"stdout"`
	Stderr         []string                `json:"stderr"`
	Results        []*execute.KernelResult `json:"results"`
	Error          *execute.KernelError    `json:"error,omitempty"`
	ExecutionCount int                     `json:"execution_count"`
}

func (s *Server) executeInContext(w http.ResponseWriter, r *http.Request) {
	k, err := s.kernelOf(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	var body contextExecution
	if err := decodeCodeBody(w, r, &body); err != nil {
		s.writeErr(w, err)
		return
	}
	if body.Timeout < 0 || body.Timeout > execute.MaxTimeout.Seconds() {
		s.writeErr(w, fmt.Errorf("%w: timeout must be 0-%d seconds", errBadRequest, int(execute.MaxTimeout.Seconds())))
		return
	}
	timeout := time.Duration(body.Timeout * float64(time.Second))
	if wantsJSON(r) {
		res := contextResult{Stdout: []string{}, Stderr: []string{}, Results: []*execute.KernelResult{}}
		err := k.Execute(r.Context(), body.Code, timeout, func(ev execute.ContextEvent) {
			switch ev.Type {
			case "stdout":
				res.Stdout = append(res.Stdout, ev.Text)
			case "stderr":
				res.Stderr = append(res.Stderr, ev.Text)
			case "result":
				res.Results = append(res.Results, ev.Result)
			case "error":
				res.Error = ev.Error
			case "end":
				res.ExecutionCount = ev.ExecutionCount
			}
		})
		if err != nil && !errors.Is(err, execute.ErrKernelDead) {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	// Refuse before the stream starts when the kernel is gone.
	if !k.Info().Alive {
		s.writeErr(w, execute.ErrKernelDead)
		return
	}
	nd := newNDJSON(w)
	ended := false
	err = k.Execute(r.Context(), body.Code, timeout, func(ev execute.ContextEvent) {
		ended = ended || ev.Type == "end"
		nd.send(ev)
	})
	if !ended {
		msg := "the execution did not finish"
		if err != nil {
			msg = err.Error()
		}
		nd.send(execute.ContextEvent{Type: "end", Error: &execute.KernelError{Name: "SoulBoxError", Value: msg}})
	}
}
