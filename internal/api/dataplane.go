package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/soulbox-dev/soulbox/internal/codeinterp"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/sdk/go/filesig"
)

// Header names the E2B SDKs use to address a sandbox through a proxy.
const (
	headerSandboxID   = "E2b-Sandbox-Id"
	headerSandboxPort = "E2b-Sandbox-Port"
	headerAccessToken = "X-Access-Token"
)

// dataPlaneTarget reports whether r is addressed to a sandbox, by header
// or by a Host of the form <port>-<sandboxID>.<domain>. A port that does
// not parse is returned as -1.
func (s *Server) dataPlaneTarget(r *http.Request) (id string, port int, ok bool) {
	if id := r.Header.Get(headerSandboxID); id != "" {
		port := AgentPort
		if p := r.Header.Get(headerSandboxPort); p != "" {
			port = parsePort(p)
		}
		return id, port, true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, rest, found := strings.Cut(host, ".")
	if !found || (s.cfg.Domain != "" && !strings.EqualFold(rest, s.cfg.Domain)) {
		return "", 0, false
	}
	p, id, found := strings.Cut(label, "-")
	if !found || id == "" || p == "" || p[0] < '0' || p[0] > '9' {
		return "", 0, false
	}
	return strings.ToLower(id), parsePort(p), true
}

func parsePort(p string) int {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return -1
	}
	return n
}

// proxy authorizes a data-plane request and forwards it to the sandbox's
// agent, streaming both ways (Connect server streams are flushed message
// by message). A sandbox that does not exist or is not running answers
// 502, as E2B's proxy does: the SDKs read it as "the sandbox is gone"
// (isRunning false, TimeoutError).
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, id string, port int) {
	if port < 0 {
		writeError(w, http.StatusBadRequest, "bad sandbox port")
		return
	}
	t, ok := s.cfg.Manager.Target(id)
	if !ok {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %q was not found: it was killed, timed out or never existed", id))
		return
	}
	if port == codeinterp.Port && t.Template == sandbox.TemplateCodeInterpreter {
		s.codeInterpreter(w, r, id, t)
		return
	}
	if port != AgentPort {
		s.forwardPort(w, r, id, port, t)
		return
	}
	if r.URL.Path == "/health" {
		s.agentHealth(w, r, id, t)
		return
	}
	if err := s.authorizeData(r, t.AccessToken); err != nil {
		s.writeErr(w, err)
		return
	}
	s.forward(w, r, id, t)
}

// forward sends an authorized request to the sandbox's agent.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, id string, t sandbox.Target) {
	if t.State != sandbox.Running {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s was not found running: it is %s; resume or connect to it first", id, t.State))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "agent"
			pr.Out.Host = "agent"
			for _, h := range []string{headerSandboxID, headerSandboxPort, headerAccessToken, "X-API-Key"} {
				pr.Out.Header.Del(h)
			}
		},
		// gRPC needs HTTP/2 end to end; everything else goes over HTTP/1.1.
		Transport:     t.Box.HTTPClient(r.ProtoMajor == 2).Transport,
		FlushInterval: -1,
		// Copy errors are clients going away or sandboxes ending.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), err) || r.Context().Err() != nil {
				return // the client went away
			}
			s.log.Warn("agent unreachable", "sandbox", id, "err", err)
			// The error names host paths: it goes to the log only.
			writeError(w, http.StatusBadGateway, "the sandbox is running but its agent port is not open")
		},
	}
	serveProxy(w, r, rp, s.log)
}

// agentHealth answers envd's unauthenticated GET /health, which the SDKs
// use to tell a live sandbox (204) from a gone one (502): the sandbox must
// be running and its agent must accept a connection.
func (s *Server) agentHealth(w http.ResponseWriter, r *http.Request, id string, t sandbox.Target) {
	if t.State != sandbox.Running {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s was not found running: it is %s", id, t.State))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	c, err := t.Box.Dial(ctx)
	if err != nil {
		s.log.Warn("agent unreachable", "sandbox", id, "err", err)
		writeError(w, http.StatusBadGateway, "the sandbox is running but its agent port is not open")
		return
	}
	c.Close()
	w.WriteHeader(http.StatusNoContent)
}

// healthTimeout bounds the agent check of GET /health.
const healthTimeout = 5 * time.Second

// signedFiles serves a signed /files URL that names no sandbox: the E2B
// SDKs build file URLs from E2B_SANDBOX_URL alone when it is set, without
// the E2b-Sandbox-Id header. The sandbox is the one whose access token
// the signature was made with.
func (s *Server) signedFiles(w http.ResponseWriter, r *http.Request) {
	op, err := signedOp(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	q := r.URL.Query()
	// The Go SDK names the sandbox (sandbox_id); the E2B SDKs do not, and
	// then every live sandbox's token is tried.
	var live []sandbox.Target
	if id := q.Get(querySandboxID); id != "" {
		if t, ok := s.cfg.Manager.Target(id); ok {
			live = append(live, t)
		}
	} else {
		live = s.cfg.Manager.Targets()
	}
	for _, t := range live {
		err := filesig.Verify(q.Get("signature"), q.Get("signature_expiration"), q.Get("path"), op, q.Get("username"), t.AccessToken, s.cfg.Now())
		if errors.Is(err, filesig.ErrInvalid) {
			continue
		}
		if err != nil { // made with this sandbox's token, but expired
			s.writeErr(w, fmt.Errorf("%w: %v", errUnauthorized, err))
			return
		}
		s.forward(w, r, t.ID, t)
		return
	}
	s.writeErr(w, fmt.Errorf("%w: the file URL signature matches no live sandbox (wrong path, user or operation, or the sandbox is gone)", errUnauthorized))
}

// querySandboxID names the sandbox in a signed file URL made by the Go SDK.
const querySandboxID = "sandbox_id"

// isSignedFiles reports whether r is a /files request carrying a URL
// signature.
func isSignedFiles(r *http.Request) bool {
	return r.URL.Path == "/files" && r.URL.Query().Get("signature") != ""
}

// signedOp is the operation a signed /files request performs.
func signedOp(r *http.Request) (string, error) {
	switch r.Method {
	case http.MethodGet:
		return filesig.Read, nil
	case http.MethodPost:
		return filesig.Write, nil
	}
	return "", fmt.Errorf("%w: a signed URL allows only GET or POST", errUnauthorized)
}

// authorizeData accepts the sandbox's access token, or a valid signature
// for one file operation (GET or POST /files).
func (s *Server) authorizeData(r *http.Request, token string) error {
	if got := r.Header.Get(headerAccessToken); got != "" {
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1 {
			return nil
		}
		return fmt.Errorf("%w: wrong access token for this sandbox", errUnauthorized)
	}
	if isSignedFiles(r) {
		op, err := signedOp(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		if err := filesig.Verify(q.Get("signature"), q.Get("signature_expiration"), q.Get("path"), op, q.Get("username"), token, s.cfg.Now()); err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		return nil
	}
	return fmt.Errorf("%w: missing access token (X-Access-Token header) or file URL signature", errUnauthorized)
}
