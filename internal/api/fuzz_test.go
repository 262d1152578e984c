package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/soulbox-dev/soulbox/internal/auth"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// stubRuntime stands in for the kernel-level runtime (tested end to end
// in test/) so the HTTP layer's decoding and validation can be fuzzed.
type stubRuntime struct {
	mu sync.Mutex
	n  int
}

type stubBox struct {
	h    runtime.Handle
	done chan struct{}
	once sync.Once
}

func (b *stubBox) Handle() runtime.Handle                            { return b.h }
func (b *stubBox) Pause() error                                      { return nil }
func (b *stubBox) Resume() error                                     { return nil }
func (b *stubBox) Kill() error                                       { b.once.Do(func() { close(b.done) }); return nil }
func (b *stubBox) SetLimits(limits.Limits) error                     { return nil }
func (b *stubBox) SetEnv(context.Context, map[string]string) error   { return nil }
func (b *stubBox) Done() <-chan struct{}                             { return b.done }
func (b *stubBox) Usage() (runtime.Usage, error)                     { return runtime.Usage{}, nil }
func (b *stubBox) Dial(context.Context) (net.Conn, error)            { return nil, errors.New("stub") }
func (b *stubBox) HTTPClient(bool) *http.Client                      { return http.DefaultClient }
func (r *stubRuntime) Adopt(runtime.Handle) (sandbox.Box, error)     { return nil, runtime.ErrGone }
func (r *stubRuntime) LiveSandboxes() ([]runtime.Handle, error)      { return nil, nil }
func (r *stubRuntime) Destroy(context.Context, runtime.Handle) error { return nil }
func (r *stubRuntime) RemoveStaleDirs(func(string) bool) error       { return nil }
func (r *stubRuntime) Start(_ context.Context, s runtime.Spec) (sandbox.Box, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	id := strings.Repeat("a", 6) + string(rune('a'+r.n%26)) + strings.Repeat("0", 5)
	return &stubBox{h: runtime.Handle{ID: id + string(rune('a'+r.n/26%26)), Slot: r.n}, done: make(chan struct{})}, nil
}

// fuzzServer is the real API over a real store and manager.
func fuzzServer(t testing.TB) (*Server, string) {
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _, err := st.CreateAPIKey(context.Background(), "fuzz", "", auth.PrefixSoulBox)
	if err != nil {
		t.Fatal(err)
	}
	m := sandbox.New(sandbox.Config{Runtime: &stubRuntime{}, Store: st, MaxSandboxes: 1 << 20})
	t.Cleanup(m.Close)
	return New(Config{Manager: m, Store: st}), key
}

// FuzzControlPlane sends arbitrary bodies and queries to the control
// plane: every answer is a 2xx, or a 4xx with a JSON {code, message} body
// whose code is the status; never a 5xx or a panic.
func FuzzControlPlane(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/sandboxes", `{"templateID":"base","timeout":30,"metadata":{"a":"b"},"envVars":{"K":"V"},"limits":{"cpus":0.5,"memoryMB":256}}`},
		{"POST", "/v2/sandboxes", `{"limits":{"diskSizeMB":-1}}`},
		{"POST", "/sandboxes", `{"timeout":1e99}`},
		{"POST", "/sandboxes", `{"envVars":{"A=B":"x"}}`},
		{"GET", "/v2/sandboxes?metadata=a%3Db&state=running,paused&limit=2&nextToken=x", ""},
		{"POST", "/sandboxes/aaaaaa/timeout", `{"timeout":0}`},
		{"POST", "/sandboxes/aaaaaa/connect", `{"timeout":"x"}`},
		{"GET", "/sandboxes/%2e%2e/metrics", ""},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	s, key := fuzzServer(f)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if method != "GET" && method != "POST" && method != "DELETE" {
			method = "POST"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://daemon"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("X-API-Key", key)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: %d %s", method, path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != rec.Code || e.Message == "" {
				t.Fatalf("%s %q: %d with body %q", method, path, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzDataPlaneTarget: host names and headers never panic the router, and
// a routed request names a well-formed port (or -1).
func FuzzDataPlaneTarget(f *testing.F) {
	f.Add("49983-abc123.sandbox.test", "", "")
	f.Add("8080-x.y.z:443", "abc", "99999")
	f.Add("-.", "", "0")
	s := New(Config{Domain: "sandbox.test"})
	f.Fuzz(func(t *testing.T, host, id, port string) {
		r := httptest.NewRequest("GET", "http://daemon/", nil)
		r.Host = host
		if id != "" {
			r.Header.Set(headerSandboxID, id)
		}
		if port != "" {
			r.Header.Set(headerSandboxPort, port)
		}
		_, p, ok := s.dataPlaneTarget(r)
		if ok && p != -1 && (p < 1 || p > 65535) {
			t.Fatalf("port %d from %q/%q", p, host, port)
		}
	})
}

func (b *stubBox) PortTransport() http.RoundTripper { return http.DefaultTransport }
func (b *stubBox) UnstallCPU() (bool, bool, error)  { return false, false, nil }
func (b *stubBox) AgentLog() string                 { return "" }
func (b *stubBox) DialPort(context.Context, int) (net.Conn, error) {
	return nil, runtime.ErrPortClosed
}
func (b *stubBox) SetEgress(netsetup.Rules) error { return nil }
