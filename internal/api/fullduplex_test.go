package api

import (
	"bytes"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeProxyUpstreamDiesMidRequest (a smoke test of the path; the
// guard itself: TestGuardedBodyStop): an upstream (an agent) that dies
// while the client is still sending its body leaves the transport reading
// that body after the proxy has answered 502; the server must not then
// read it concurrently (net/http panics "invalid concurrent Body.Read
// call", which the server recovers and logs).
func TestServeProxyUpstreamDiesMidRequest(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, 4)) // some of the body, then die
		panic(http.ErrAbortHandler)
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	var logs syncBuffer
	front := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ErrorLog = log.New(io.Discard, "", 0)
		serveProxy(w, r, rp, slog.New(slog.DiscardHandler))
	}))
	front.Config.ErrorLog = log.New(&logs, "", 0)
	front.Start()
	defer front.Close()

	for range 20 {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, front.URL, pr)
		done := make(chan *http.Response, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed by the test below
			if err != nil {
				done <- nil
				return
			}
			done <- resp
		}()
		// The client goes on sending after the proxy has answered; its
		// writes may block once nobody reads them, so they run apart.
		go func() {
			pw.Write([]byte("first chunk"))
			time.Sleep(50 * time.Millisecond)
			pw.Write(bytes.Repeat([]byte("x"), 1024))
			pw.Close()
		}()
		var resp *http.Response
		select {
		case resp = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("no answer")
		}
		time.Sleep(60 * time.Millisecond)
		pr.CloseWithError(io.ErrClosedPipe)
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if s := logs.String(); strings.Contains(s, "panic") {
		t.Fatalf("the server recovered a panic:\n%s", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// blockingBody blocks each Read until released, counting the reads.
type blockingBody struct {
	mu      sync.Mutex
	reads   int
	started chan struct{}
	release chan struct{}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	b.reads++
	b.mu.Unlock()
	b.started <- struct{}{}
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

func (b *blockingBody) Close() error { return nil }

// TestGuardedBodyStop: stop ends a read in progress through its unblock
// function, returns only once that read has returned, and no later read
// reaches the underlying body.
func TestGuardedBodyStop(t *testing.T) {
	under := &blockingBody{started: make(chan struct{}, 1), release: make(chan struct{})}
	g := &guardedBody{rc: under}
	readDone := make(chan error, 1)
	go func() {
		_, err := g.Read(make([]byte, 8))
		readDone <- err
	}()
	<-under.started
	unblocked := false
	stopped := make(chan struct{})
	go func() {
		g.stop(func() { unblocked = true; close(under.release) })
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	select {
	case err := <-readDone:
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("read in progress: %v", err)
		}
	default:
		t.Fatal("stop returned before the read in progress did")
	}
	if !unblocked {
		t.Fatal("stop did not unblock the read in progress")
	}
	if _, err := g.Read(make([]byte, 8)); err != errBodyDone {
		t.Fatalf("read after stop: %v, want errBodyDone", err)
	}
	if under.reads != 1 {
		t.Fatalf("the underlying body was read %d times, want 1", under.reads)
	}
	// Without a read in progress, stop does not call unblock.
	g2 := &guardedBody{rc: under}
	g2.stop(func() { t.Fatal("unblock without a read in progress") })
}

// closeCounter counts Close calls.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

// TestGuardedBodyCloseAfterStop: closing a server's request body reads the
// rest of it from the connection, so a Close from the transport after the
// handler has returned must not reach it.
func TestGuardedBodyCloseAfterStop(t *testing.T) {
	under := &closeCounter{Reader: strings.NewReader("body")}
	g := &guardedBody{rc: under}
	if err := g.Close(); err != nil || under.closes != 1 {
		t.Fatalf("close before stop: %v, %d closes, want 1", err, under.closes)
	}
	g.stop(func() { t.Fatal("unblock without a read in progress") })
	if err := g.Close(); err != nil || under.closes != 1 {
		t.Fatalf("close after stop: %v, %d closes, want still 1", err, under.closes)
	}
}
