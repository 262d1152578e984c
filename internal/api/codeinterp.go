package api

import (
	"crypto/subtle"
	"fmt"
	"net/http"

	"github.com/soulbox-dev/soulbox/internal/codeinterp"
	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
)

// codeInterpreter answers a request for port 49999 of a sandbox created
// from the code-interpreter template: E2B's code-interpreter protocol,
// served by the daemon (internal/codeinterp) on the sandbox's code
// contexts. The port is as open as the sandbox's other ports (public, or
// private behind the traffic access token), as in E2B; running code
// additionally needs the sandbox's access token, which the SDKs send to
// POST /execute. A wrong access token is refused everywhere.
func (s *Server) codeInterpreter(w http.ResponseWriter, r *http.Request, id string, t sandbox.Target) {
	if !trafficAllowed(w, r, id, t) {
		return
	}
	if t.State != sandbox.Running {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("sandbox %s was not found running: it is %s; resume or connect to it first", id, t.State))
		return
	}
	canExecute := false
	if got := r.Header.Get(headerAccessToken); got != "" {
		if subtle.ConstantTimeCompare([]byte(got), []byte(t.AccessToken)) != 1 {
			s.writeErr(w, fmt.Errorf("%w: wrong access token for this sandbox", errUnauthorized))
			return
		}
		canExecute = true
	}
	s.interp.Serve(w, r, codeinterp.Sandbox{ID: id, Agent: execute.NewAgent(t.Box.HTTPClient(false)), CanExecute: canExecute})
}
