// Package codeinterp serves E2B's code-interpreter protocol: the HTTP API
// that the unmodified `@e2b/code-interpreter` (npm) and
// `e2b-code-interpreter` (PyPI) SDKs speak to port 49999 of a sandbox
// (POST /execute streaming NDJSON, POST and GET /contexts, DELETE
// /contexts/{id}, POST /contexts/{id}/restart, GET /health). It is built
// on SoulBox's code contexts (internal/execute): the daemon answers the
// requests and the kernels run inside the sandbox as its user. As in E2B,
// a default context per language (python, javascript) serves runs that
// name no context; SoulBox creates it on first use. Default contexts are
// marked as such in the registry (execute.Contexts.Default), so they are
// found again after a daemon restart like every context.
//
// The caller (internal/api) routes a request here, resolves the sandbox
// and decides what the request may do (Sandbox.CanExecute); errors go
// back through the caller's error mapper (Config.WriteError).
package codeinterp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/lang"
)

// Port is the sandbox port the code-interpreter SDKs address.
const Port = 49999

// defaultCwd is where contexts start unless asked otherwise, as in E2B.
const defaultCwd = "/home/user"

// maxBody caps request bodies (the code of one execution).
const maxBody = 20 << 20

// Errors the caller maps to status codes.
var (
	// ErrBadRequest is a malformed or contradictory request (400).
	ErrBadRequest = errors.New("bad code-interpreter request")
	// ErrUnauthorized is a request to run code without the sandbox's
	// access token (401).
	ErrUnauthorized = errors.New("running code needs the sandbox's access token (X-Access-Token header)")
	// ErrNotFound is an unknown path (404).
	ErrNotFound = errors.New("no such code-interpreter endpoint")
)

// Sandbox is the sandbox a request is for, found and authorized by the
// caller.
type Sandbox struct {
	ID    string
	Agent *execute.Agent
	// CanExecute is set when the request carried the sandbox's access
	// token; POST /execute needs it. (The SDKs send it there only: the
	// /contexts endpoints are as open as the sandbox's other ports.)
	CanExecute bool
}

// Config configures a Server.
type Config struct {
	// Contexts holds the code contexts; shared with the daemon's own
	// /sandboxes/{id}/contexts API, so both list the same contexts.
	Contexts *execute.Contexts
	// WriteError answers a request with err's status (the daemon's one
	// error mapper).
	WriteError func(http.ResponseWriter, error)
	Now        func() time.Time // nil: time.Now
}

// Server answers code-interpreter requests for every sandbox. It is safe
// for concurrent use and keeps nothing of its own: the contexts, default
// ones included, are in Config.Contexts.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("POST /execute", s.execute)
	s.mux.HandleFunc("POST /contexts", s.createContext)
	s.mux.HandleFunc("GET /contexts", s.listContexts)
	s.mux.HandleFunc("DELETE /contexts/{cid}", s.deleteContext)
	s.mux.HandleFunc("POST /contexts/{cid}/restart", s.restartContext)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.cfg.WriteError(w, fmt.Errorf("%w: %s %s", ErrNotFound, r.Method, r.URL.Path))
	})
	return s
}

type sandboxKey struct{}

// Serve answers one request for sb.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, sb Sandbox) {
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sandboxKey{}, sb)))
}

func sandboxOf(r *http.Request) Sandbox {
	sb, _ := r.Context().Value(sandboxKey{}).(Sandbox)
	return sb
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, "OK")
}

// contextJSON is a context as the SDKs read it.
type contextJSON struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

func contextOf(i execute.ContextInfo) contextJSON {
	return contextJSON{ID: i.ID, Language: i.Language, Cwd: i.Cwd}
}

// createRequest is the body of POST /contexts.
type createRequest struct {
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

func (s *Server) createContext(w http.ResponseWriter, r *http.Request) {
	sb := sandboxOf(r)
	var body createRequest
	if err := decode(w, r, &body); err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	language, err := normalizeLanguage(body.Language)
	if err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	if body.Cwd == "" {
		body.Cwd = defaultCwd
	}
	k, err := s.cfg.Contexts.Create(r.Context(), sb.ID, sb.Agent, language, body.Cwd)
	if err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, contextOf(k.Info()))
}

func (s *Server) listContexts(w http.ResponseWriter, r *http.Request) {
	sb := sandboxOf(r)
	infos, err := s.cfg.Contexts.List(r.Context(), sb.ID, sb.Agent)
	if err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	out := make([]contextJSON, 0, len(infos))
	for _, i := range infos {
		out = append(out, contextOf(i))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteContext(w http.ResponseWriter, r *http.Request) {
	sb := sandboxOf(r)
	if err := s.cfg.Contexts.Delete(r.Context(), sb.ID, sb.Agent, r.PathValue("cid")); err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nil)
}

func (s *Server) restartContext(w http.ResponseWriter, r *http.Request) {
	sb := sandboxOf(r)
	k, err := s.cfg.Contexts.Get(r.Context(), sb.ID, sb.Agent, r.PathValue("cid"))
	if err == nil {
		err = k.Restart(r.Context())
	}
	if err != nil {
		s.cfg.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, nil)
}

// kernel finds the context an execution runs in: the named one, or the
// default context of the language (python when none is named), created
// on first use.
func (s *Server) kernel(ctx context.Context, sb Sandbox, contextID, language string) (*execute.Kernel, error) {
	if contextID != "" {
		return s.cfg.Contexts.Get(ctx, sb.ID, sb.Agent, contextID)
	}
	language, err := normalizeLanguage(language)
	if err != nil {
		return nil, err
	}
	return s.cfg.Contexts.Default(ctx, sb.ID, sb.Agent, language)
}

// normalizeLanguage maps the SDKs' language names to a context language
// (python when empty; "js" is javascript, as in E2B).
func normalizeLanguage(language string) (string, error) {
	language = strings.ToLower(strings.TrimSpace(language))
	switch language {
	case "":
		return "python", nil
	case "js":
		return "javascript", nil
	}
	l, ok := lang.Lookup(language)
	if !ok {
		return "", fmt.Errorf("%w: unknown language %q (code contexts support %v)", ErrBadRequest, language, execute.ContextLanguages())
	}
	return l.Name, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // no body: every field takes its default
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: malformed JSON body: %v", ErrBadRequest, err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
