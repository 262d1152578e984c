// Package api is the daemon's HTTP surface on one listener: the control
// plane (REST/JSON in the shape of E2B's API, authenticated by API key),
// the data plane (requests for a sandbox's agent, addressed by the
// E2b-Sandbox-Id header or a <port>-<id>.<domain> host name and
// authenticated by the sandbox's access token or a signed URL, forwarded
// over HTTP/1.1 or h2c), the OpenAPI document and the health check.
//
// Every error answer is JSON {"code": <status>, "message": "..."}; the
// mapping from internal errors to status codes is in one place (errors.go).
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/soulbox-dev/soulbox/internal/codeinterp"
	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// AgentPort is the port the E2B SDKs address the in-sandbox agent (envd) on.
const AgentPort = 49983

// EnvdVersion is the envd protocol version the agent implements, reported
// to the SDKs, which enable features by it.
const EnvdVersion = "0.5.7"

// maxJSONBody caps control-plane request bodies.
const maxJSONBody = 1 << 20

// Config configures the API.
type Config struct {
	Manager *sandbox.Manager
	Store   *store.Store
	Logger  *slog.Logger
	// Domain, if set, is reported to clients and routes requests whose
	// Host is <port>-<sandboxID>.<Domain> to that sandbox.
	Domain string
	Now    func() time.Time // nil: time.Now
	// InlineArtifactMax: execute_code artifacts up to this size come back
	// inline; larger ones as signed URLs (0: 1 MiB).
	InlineArtifactMax int64
	// Executor runs one-shot programs for POST /judge; nil disables it.
	Executor *lang.Executor
	// MaxLimits are the administrator's maximums (zero: limits.Maximums).
	MaxLimits limits.Limits
}

// Server is the HTTP handler of the daemon.
type Server struct {
	cfg     Config
	log     *slog.Logger
	control *http.ServeMux
	// patterns are the control plane's documented routes.
	patterns []string
	metrics  cpuSampler
	contexts *execute.Contexts
	// interp answers port 49999 of code-interpreter sandboxes.
	interp *codeinterp.Server
	langs  languageCache
}

// New returns the daemon's handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, control: http.NewServeMux(), contexts: execute.NewContexts()}
	s.interp = codeinterp.New(codeinterp.Config{Contexts: s.contexts, WriteError: s.writeErr, Now: cfg.Now})
	if m := cfg.Manager; m != nil {
		// A sandbox's code contexts go with it, however it ends.
		m.OnRemoved(func(id string) {
			s.contexts.Forget(id)
		})
		s.metrics.alive = func(id string) bool {
			_, ok := m.Target(id)
			return ok
		}
	}
	s.routes()
	return s
}

// ServeHTTP sends data-plane requests to their sandbox (by header, host
// name, or, for a signed /files URL, by signature) and the rest to the
// control plane.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, port, ok := s.dataPlaneTarget(r); ok {
		s.proxy(w, r, id, port)
		return
	}
	if isSignedFiles(r) {
		s.signedFiles(w, r)
		return
	}
	s.control.ServeHTTP(w, r)
}

func (s *Server) routes() {
	m := s.control
	// Every documented endpoint is registered here, and only here; a test
	// checks the OpenAPI document names each of them.
	handle := func(pattern string, h http.HandlerFunc) {
		m.HandleFunc(pattern, h)
		s.patterns = append(s.patterns, pattern)
	}
	handle("GET /health", s.health)
	handle("GET /openapi.json", serveOpenAPI)
	handle("POST /sandboxes", s.auth(s.create))
	handle("POST /v2/sandboxes", s.auth(s.create))
	handle("GET /sandboxes", s.auth(s.listV1))
	handle("GET /v2/sandboxes", s.auth(s.listV2))
	handle("GET /sandboxes/{id}", s.auth(s.get))
	handle("DELETE /sandboxes/{id}", s.auth(s.kill))
	handle("POST /sandboxes/{id}/timeout", s.auth(s.setTimeout))
	handle("POST /sandboxes/{id}/pause", s.auth(s.pause))
	handle("POST /sandboxes/{id}/resume", s.auth(s.resume))
	handle("POST /sandboxes/{id}/connect", s.auth(s.connect))
	handle("POST /v2/sandboxes/{id}/connect", s.auth(s.connect))
	handle("GET /sandboxes/{id}/metrics", s.auth(s.sandboxMetrics))
	handle("PUT /sandboxes/{id}/network", s.auth(s.updateNetwork))
	handle("GET /sandboxes/{id}/terminal", s.terminal) // its own auth: key or access token
	handle("POST /sandboxes/{id}/execute", s.auth(s.executeCode))
	handle("GET /v1/languages", s.auth(s.languages))
	handle("POST /judge", s.auth(s.judgeOne))
	handle("POST /judge/batch", s.auth(s.judgeBatch))
	handle("GET /judge/interactive", s.auth(s.judgeInteractive)) // WebSocket
	handle("POST /sandboxes/{id}/contexts", s.auth(s.createContext))
	handle("GET /sandboxes/{id}/contexts", s.auth(s.listContexts))
	handle("DELETE /sandboxes/{id}/contexts/{cid}", s.auth(s.deleteContext))
	handle("POST /sandboxes/{id}/contexts/{cid}/restart", s.auth(s.restartContext))
	handle("POST /sandboxes/{id}/contexts/{cid}/interrupt", s.auth(s.interruptContext))
	handle("POST /sandboxes/{id}/contexts/{cid}/execute", s.auth(s.executeInContext))
	handle("GET /sandboxes/{id}/ports/{port}/tcp", s.tcpTunnel) // its own auth: key or tokens
	// gRPC, gRPC-Web and Connect: not REST, so not in the OpenAPI
	// document; defined in api/proto/soulbox/v1/code.proto.
	m.Handle(s.codeServiceHandler())
	m.HandleFunc("/files", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusUnauthorized, "a /files request needs a sandbox (E2b-Sandbox-Id header or <port>-<id> host name) and its access token, or a file URL signature")
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "sandboxes": s.cfg.Manager.Count()})
}

type teamKey struct{}

// auth admits requests carrying a valid API key and passes the key's team
// on.
func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		team, err := s.authenticate(r)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), teamKey{}, team)))
	}
}

// authenticate returns the team of the request's API key (X-API-Key, or
// Authorization: Bearer): the control plane's one check, for REST and
// gRPC alike.
func (s *Server) authenticate(r *http.Request) (string, error) {
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if v, ok := cutPrefixFold(r.Header.Get("Authorization"), "Bearer "); ok {
			key = v
		}
	}
	if key == "" {
		return "", fmt.Errorf("%w: missing API key: send it in the X-API-Key header", errUnauthorized)
	}
	k, err := s.cfg.Store.AuthenticateAPIKey(r.Context(), key)
	if err != nil {
		return "", err
	}
	return k.Team, nil
}

func teamOf(r *http.Request) string { return teamFrom(r.Context()) }

func teamFrom(ctx context.Context) string {
	t, _ := ctx.Value(teamKey{}).(string)
	return t
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
