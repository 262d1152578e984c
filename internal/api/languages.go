package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/lang"
)

// languagesTTL is how long a probe of the language registry answers
// GET /v1/languages: each version command starts a sandbox (about two
// seconds for the whole registry), and what is installed rarely changes.
const languagesTTL = time.Minute

// languageCache holds the last probe; concurrent requests share one.
type languageCache struct {
	mu    sync.Mutex
	at    time.Time
	infos []lang.Info
}

// languages serves GET /v1/languages: every language of the registry,
// whether it can run here (and its version, printed inside a sandbox as
// programs will see it) or how to get it, and the template it runs in.
func (s *Server) languages(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Executor == nil {
		s.writeErr(w, fmt.Errorf("%w: this daemon does not run code", errUnsupported))
		return
	}
	c := &s.langs
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := s.cfg.Now(); c.infos == nil || now.Sub(c.at) > languagesTTL {
		// The probe is not the client's: a client that goes away does
		// not leave a half probe (every language "unavailable") cached.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
		infos := s.cfg.Executor.Probe(ctx)
		err := ctx.Err()
		cancel()
		if err != nil {
			s.writeErr(w, fmt.Errorf("probing the languages: %w", err))
			return
		}
		c.infos, c.at = infos, now
	}
	writeJSON(w, http.StatusOK, c.infos)
}
