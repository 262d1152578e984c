package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
)

// headerTrafficToken carries a sandbox's traffic access token to its
// exposed ports (E2B's name).
const headerTrafficToken = "E2b-Traffic-Access-Token"

// forwardPort proxies a request to a TCP port listening inside the
// sandbox (HTTP, and WebSocket through the upgrade). The daemon dials
// from inside the sandbox's network namespace, so this works with egress
// off. As in E2B, ports are public unless the sandbox was created with
// private ports (a traffic access token, checked in constant time; 403
// when missing or wrong). The sandbox's envd access token and API keys
// are never forwarded.
func (s *Server) forwardPort(w http.ResponseWriter, r *http.Request, id string, port int, t sandbox.Target) {
	if !trafficAllowed(w, r, id, t) {
		return
	}
	if t.State != sandbox.Running {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s was not found running: it is %s; resume or connect to it first", id, t.State))
		return
	}
	host := r.Host
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "127.0.0.1:" + strconv.Itoa(port)
			pr.Out.Host = host // the tenant's server sees the public host name
			for _, h := range []string{headerSandboxID, headerSandboxPort, headerAccessToken, headerTrafficToken, "X-API-Key"} {
				pr.Out.Header.Del(h)
			}
			pr.SetXForwarded()
		},
		Transport:     t.Box.PortTransport(),
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			if errors.Is(err, runtime.ErrPortClosed) {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s is running but nothing listens on port %d", id, port))
				return
			}
			s.log.Debug("port unreachable", "sandbox", id, "port", port, "err", err)
			writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s is running but port %d did not answer over HTTP", id, port))
		},
	}
	serveProxy(w, r, rp, s.log)
}

// trafficAllowed checks the traffic access token of a sandbox with
// private ports (answering 403 when it is missing or wrong); public ports
// need none.
func trafficAllowed(w http.ResponseWriter, r *http.Request, id string, t sandbox.Target) bool {
	if t.TrafficAccessToken == "" {
		return true
	}
	got := r.Header.Get(headerTrafficToken)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(t.TrafficAccessToken)) != 1 {
		writeError(w, http.StatusForbidden, fmt.Sprintf("sandbox %s's ports need its traffic access token (header %s)", id, headerTrafficToken))
		return false
	}
	return true
}

// tcpTunnel serves GET /sandboxes/{id}/ports/{port}/tcp: a raw TCP
// connection to a port listening inside the sandbox, carried by a
// WebSocket (binary frames both ways; text frames are a protocol error),
// so browsers, websocat and any WebSocket library can use it. The daemon
// connects first (502 when nothing listens, before the upgrade). It
// works with egress off, as the port proxy does. Authentication, since
// this reaches any protocol: the API key of the sandbox's team (header),
// or the sandbox's access token (access_token parameter) or, for a
// sandbox with private ports, its traffic access token (header or
// traffic_access_token parameter).
func (s *Server) tcpTunnel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || port < 1 || port > 65535 {
		s.writeErr(w, fmt.Errorf("%w: port %q must be 1-65535", errBadRequest, r.PathValue("port")))
		return
	}
	t, err := s.tunnelAuth(r, id)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if t.State != sandbox.Running {
		writeError(w, http.StatusConflict, fmt.Sprintf("sandbox %s is %s: resume it first", id, t.State))
		return
	}
	// A request that is not a WebSocket handshake never makes the daemon
	// dial the sandbox.
	if err := checkUpgrade(r); err != nil {
		s.writeErr(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	up, err := t.Box.DialPort(ctx, port)
	cancel()
	if err != nil {
		if errors.Is(err, runtime.ErrPortClosed) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s is running but nothing listens on port %d", id, port))
			return
		}
		s.log.Debug("tunnel dial", "sandbox", id, "port", port, "err", err)
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s: port %d unreachable", id, port))
		return
	}
	defer up.Close()
	// Authentication is by key or token, never by cookie.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	nc := websocket.NetConn(wctx, ws, websocket.MessageBinary)
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(up, nc)
		if c, ok := up.(interface{ CloseWrite() error }); ok {
			c.CloseWrite()
		} else {
			up.Close()
		}
		done <- struct{}{}
	}()
	go func() {
		io.Copy(nc, up)
		nc.Close() // a normal close: the sandbox's side ended
		done <- struct{}{}
	}()
	<-done
	<-done
}

// tunnelAuth admits the API key of the sandbox's team, the sandbox's
// access token, or its traffic access token.
func (s *Server) tunnelAuth(r *http.Request, id string) (sandbox.Target, error) {
	t, ok := s.cfg.Manager.Target(id)
	if !ok {
		return sandbox.Target{}, fmt.Errorf("%w: %s", sandbox.ErrNotFound, id)
	}
	tok := r.Header.Get(headerTrafficToken)
	if tok == "" {
		tok = r.URL.Query().Get("traffic_access_token")
	}
	if tok != "" {
		if t.TrafficAccessToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t.TrafficAccessToken)) == 1 {
			return t, nil
		}
		return sandbox.Target{}, fmt.Errorf("%w: wrong traffic access token", errUnauthorized)
	}
	return s.terminalAuth(r, id)
}
