package api

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

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
// by message).
func (s *Server) proxy(w http.ResponseWriter, r *http.Request, id string, port int) {
	if port < 0 {
		writeError(w, http.StatusBadRequest, "bad sandbox port")
		return
	}
	t, ok := s.cfg.Manager.Target(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("sandbox %q not found", id))
		return
	}
	if err := s.authorizeData(r, t.AccessToken); err != nil {
		s.writeErr(w, err)
		return
	}
	if port != AgentPort {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("port %d of sandbox %s is not reachable: SoulBox forwards only the agent's port %d for now", port, id, AgentPort))
		return
	}
	if t.State == sandbox.Paused {
		writeError(w, http.StatusConflict, fmt.Sprintf("sandbox %s is paused: resume or connect to it first", id))
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
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), err) || r.Context().Err() != nil {
				return // the client went away
			}
			s.log.Warn("agent unreachable", "sandbox", id, "err", err)
			writeError(w, http.StatusBadGateway, "the sandbox's agent is unreachable: "+err.Error())
		},
	}
	rp.ServeHTTP(w, r)
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
	q := r.URL.Query()
	if sig := q.Get("signature"); sig != "" && r.URL.Path == "/files" {
		op := ""
		switch r.Method {
		case http.MethodGet:
			op = filesig.Read
		case http.MethodPost:
			op = filesig.Write
		default:
			return fmt.Errorf("%w: a signed URL allows only GET or POST", errUnauthorized)
		}
		if err := filesig.Verify(sig, q.Get("signature_expiration"), q.Get("path"), op, q.Get("username"), token, s.cfg.Now()); err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		return nil
	}
	return fmt.Errorf("%w: missing access token (X-Access-Token header) or file URL signature", errUnauthorized)
}
