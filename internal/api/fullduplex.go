package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// serveProxy runs rp for r. For HTTP/1 requests it lets reads and writes
// interleave: by default the server discards the unread request body
// before it writes the response, but the transport may still be sending
// that body upstream when the upstream answers (a command that ends at
// once); losing it would make the transport drop the connection and cut
// the response mid-stream.
//
// When the upstream fails mid-request, the transport's goroutine may
// still be reading the request body after the ReverseProxy returns, and
// the server's own read after the handler would then be a concurrent
// read (net/http panics: "invalid concurrent Body.Read call"). So the
// body is guarded: once the proxy returns, a read deadline in the past
// ends a read in progress, serveProxy waits for it, and later reads get
// an error without touching the connection.
func serveProxy(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy, log *slog.Logger) {
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		if err := rc.EnableFullDuplex(); err != nil {
			log.Warn("full duplex", "err", err)
		}
	}
	var body *guardedBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &guardedBody{rc: r.Body}
		r.Body = body
	}
	rp.ServeHTTP(w, r)
	if body != nil {
		body.stop(func() { rc.SetReadDeadline(time.Now()) })
	}
}

// errBodyDone is what the transport reads from a request body after its
// handler has returned.
var errBodyDone = errors.New("request handled")

// guardedBody is a request body that can be stopped: no read of the
// underlying body happens after stop returns.
type guardedBody struct {
	rc      io.ReadCloser
	mu      sync.Mutex // guards stopped and reading
	stopped bool
	reading int
	reads   sync.WaitGroup // reads (and a close) of rc in progress
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if !b.begin() {
		return 0, errBodyDone
	}
	defer b.end()
	return b.rc.Read(p)
}

// Close is guarded as Read is: closing a server's request body reads what
// is left of it from the connection. After stop, the server closes it.
func (b *guardedBody) Close() error {
	if !b.begin() {
		return nil
	}
	defer b.end()
	return b.rc.Close()
}

// begin registers a use of rc, unless stopped.
func (b *guardedBody) begin() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.reading++
	b.reads.Add(1)
	return true
}

func (b *guardedBody) end() {
	b.mu.Lock()
	b.reading--
	b.mu.Unlock()
	b.reads.Done()
}

// stop makes every later Read fail and waits for those in progress,
// calling unblock first if there are any (to end a read that waits for
// the client).
func (b *guardedBody) stop(unblock func()) {
	b.mu.Lock()
	b.stopped = true
	reading := b.reading > 0
	b.mu.Unlock()
	if reading {
		unblock()
	}
	b.reads.Wait()
}
