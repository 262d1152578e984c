package api

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"

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
	if t.TrafficAccessToken != "" {
		got := r.Header.Get(headerTrafficToken)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(t.TrafficAccessToken)) != 1 {
			writeError(w, http.StatusForbidden, fmt.Sprintf("sandbox %s's ports need its traffic access token (header %s)", id, headerTrafficToken))
			return
		}
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
	if r.ProtoMajor == 1 {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			s.log.Warn("full duplex", "err", err)
		}
	}
	rp.ServeHTTP(w, r)
}
