package soulbox_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxtest"
)

// newTestClient returns a fake daemon and a client of it.
func newTestClient(t *testing.T) (*soulboxtest.FakeServer, *soulbox.Client) {
	t.Helper()
	fake := soulboxtest.NewFakeServer(t)
	c, err := soulbox.NewClient(soulbox.WithURL(fake.URL), soulbox.WithAPIKey(fake.APIKey))
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

// newTestSandbox also creates a sandbox.
func newTestSandbox(t *testing.T) (*soulboxtest.FakeServer, *soulbox.Client, *soulbox.Sandbox) {
	t.Helper()
	fake, c := newTestClient(t)
	sbx, err := c.Create(t.Context(), soulbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c, sbx
}

func TestNewClientEnvironment(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		opts    []soulbox.Option
		wantURL string
		wantErr bool
	}{
		{name: "default", wantURL: soulbox.DefaultURL},
		{name: "soulbox env", env: map[string]string{"SOULBOX_URL": "http://d:9/", "E2B_API_URL": "http://e2b"}, wantURL: "http://d:9"},
		{name: "e2b fallback", env: map[string]string{"E2B_API_URL": "https://e2b.example"}, wantURL: "https://e2b.example"},
		{name: "option wins", env: map[string]string{"SOULBOX_URL": "http://d:9"}, opts: []soulbox.Option{soulbox.WithURL("http://o:1")}, wantURL: "http://o:1"},
		{name: "bad env", env: map[string]string{"SOULBOX_URL": "ftp://x"}, wantErr: true},
		{name: "bad option", opts: []soulbox.Option{soulbox.WithURL("localhost:8080")}, wantErr: true},
		{name: "nil http client", opts: []soulbox.Option{soulbox.WithHTTPClient(nil)}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"SOULBOX_URL", "E2B_API_URL", "SOULBOX_API_KEY", "E2B_API_KEY"} {
				t.Setenv(k, tc.env[k])
			}
			c, err := soulbox.NewClient(tc.opts...)
			if tc.wantErr {
				if !errors.Is(err, soulbox.ErrInvalid) {
					t.Fatalf("NewClient err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.URL(); got != tc.wantURL {
				t.Errorf("URL = %q, want %q", got, tc.wantURL)
			}
		})
	}
}

func TestAPIKeyFromEnvironment(t *testing.T) {
	fake := soulboxtest.NewFakeServer(t)
	t.Setenv("SOULBOX_URL", fake.URL)
	t.Setenv("SOULBOX_API_KEY", "")
	t.Setenv("E2B_API_KEY", fake.APIKey)
	c, err := soulbox.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.List(t.Context(), soulbox.ListOptions{}); err != nil {
		t.Fatalf("List with E2B_API_KEY: %v", err)
	}
	req, _ := fake.LastRequest("/v2/sandboxes")
	if got := req.Header.Get("X-API-Key"); got != fake.APIKey {
		t.Errorf("X-API-Key = %q, want %q", got, fake.APIKey)
	}
}

func TestCreateRequest(t *testing.T) {
	fake, c := newTestClient(t)
	sbx, err := c.Create(t.Context(), soulbox.CreateOptions{
		Template:  "host",
		Timeout:   89500 * time.Millisecond,
		AutoPause: true,
		Metadata:  map[string]string{"owner": "me"},
		Env:       map[string]string{"A": "1"},
		Limits:    soulbox.Limits{CPUs: 0.5, MemoryMB: 256, Pids: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sbx.ID == "" || sbx.TemplateID != "host" || sbx.EnvdVersion == "" {
		t.Errorf("sandbox = %+v", sbx)
	}
	req, ok := fake.LastRequest("/sandboxes")
	if !ok {
		t.Fatal("no POST /sandboxes")
	}
	var got map[string]any
	if err := json.Unmarshal(req.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"templateID": "host",
		"timeout":    float64(90), // rounded up
		"autoPause":  true,
		"metadata":   map[string]any{"owner": "me"},
		"envVars":    map[string]any{"A": "1"},
		"limits":     map[string]any{"cpus": 0.5, "memoryMB": float64(256), "pids": float64(64)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v\nwant   %v", got, want)
	}
	if req.Header.Get("X-API-Key") != fake.APIKey || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", req.Header)
	}

	// Empty options send an empty object: the daemon picks every default.
	if _, err := c.Create(t.Context(), soulbox.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	req, _ = fake.LastRequest("/sandboxes")
	if string(req.Body) != "{}" {
		t.Errorf("empty create body = %s, want {}", req.Body)
	}

	info, err := c.Get(t.Context(), sbx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != sbx.ID || info.State != soulbox.StateRunning || info.Metadata["owner"] != "me" ||
		info.Limits == nil || info.Limits.MemoryMB != 256 || info.StartedAt.IsZero() || !info.EndAt.After(info.StartedAt) {
		t.Errorf("info = %+v", info)
	}
}

func TestErrors(t *testing.T) {
	fake, c, sbx := newTestSandbox(t)
	ctx := t.Context()

	bad, err := soulbox.NewClient(soulbox.WithURL(fake.URL), soulbox.WithAPIKey("sb_wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Get(ctx, sbx.ID)
	var apiErr *soulbox.APIError
	if !errors.Is(err, soulbox.ErrAuth) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Message == "" {
		t.Errorf("bad key: err = %v, want ErrAuth with status 401 and a message", err)
	}

	if _, err := c.Get(ctx, "nope"); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Get unknown: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Create(ctx, soulbox.CreateOptions{Template: "missing"}); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Create missing template: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Create(ctx, soulbox.CreateOptions{Timeout: -time.Second}); !errors.Is(err, soulbox.ErrInvalid) {
		t.Errorf("Create negative timeout: err = %v, want ErrInvalid", err)
	}
	if err := sbx.Resume(ctx, 0); !errors.Is(err, soulbox.ErrConflict) {
		t.Errorf("Resume running: err = %v, want ErrConflict", err)
	}
	if err := sbx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sbx.Pause(ctx); !errors.Is(err, soulbox.ErrConflict) {
		t.Errorf("Pause paused: err = %v, want ErrConflict", err)
	}
	if err := sbx.Resume(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}

	// Data-plane errors carry the Connect code.
	err = sbx.Commands.Kill(ctx, 999999)
	if !errors.Is(err, soulbox.ErrNotFound) || !errors.As(err, &apiErr) || apiErr.Code != "not_found" || apiErr.Status != http.StatusNotFound {
		t.Errorf("Kill unknown pid: err = %v, want ErrNotFound with code not_found", err)
	}
	if _, err := sbx.Commands.Run(ctx, "true", soulbox.WithEnv(map[string]string{"": "x"})); err != nil {
		// the fake accepts this; the real agent rejects it. Only check the type when it fails.
		if !errors.As(err, &apiErr) {
			t.Errorf("err = %T, want *APIError", err)
		}
	}
	if _, err := sbx.Files.Stat(ctx, "/nope"); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Stat missing: err = %v, want ErrNotFound", err)
	}
	if _, err := sbx.Files.ReadFile(ctx, "/nope"); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("ReadFile missing: err = %v, want ErrNotFound", err)
	}
}

func TestLifecycle(t *testing.T) {
	fake, c, sbx := newTestSandbox(t)
	ctx := t.Context()

	if err := sbx.SetTimeout(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	req, _ := fake.LastRequest("/sandboxes/" + sbx.ID + "/timeout")
	if string(req.Body) != `{"timeout":120}` {
		t.Errorf("timeout body = %s", req.Body)
	}

	if err := sbx.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := sbx.Info(ctx)
	if err != nil || info.State != soulbox.StatePaused {
		t.Fatalf("Info after pause = %+v, %v", info, err)
	}
	// Connect resumes a paused sandbox and gives a working handle.
	again, err := c.Connect(ctx, sbx.ID)
	if err != nil {
		t.Fatal(err)
	}
	req, _ = fake.LastRequest("/sandboxes/" + sbx.ID + "/connect")
	if string(req.Body) != `{"timeout":300}` {
		t.Errorf("connect body = %s", req.Body)
	}
	if info, _ := again.Info(ctx); info.State != soulbox.StateRunning {
		t.Errorf("state after Connect = %s", info.State)
	}
	if res, err := again.Commands.Run(ctx, "echo ok"); err != nil || res.Stdout != "ok\n" {
		t.Errorf("Run after Connect = %+v, %v", res, err)
	}

	ms, err := sbx.Metrics(ctx)
	if err != nil || len(ms) != 1 || ms[0].MemTotal != 512<<20 || ms[0].Timestamp.IsZero() {
		t.Errorf("Metrics = %+v, %v", ms, err)
	}

	if err := sbx.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, sbx.ID); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Get after Kill: err = %v, want ErrNotFound", err)
	}
	if err := c.Kill(ctx, sbx.ID); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Kill twice: err = %v, want ErrNotFound", err)
	}
}

func TestListPagination(t *testing.T) {
	fake, c := newTestClient(t)
	ctx := t.Context()
	var want []string
	for i := range 5 {
		md := map[string]string{"team": "a"}
		if i == 2 {
			md["team"] = "b"
		}
		sbx, err := c.Create(ctx, soulbox.CreateOptions{Metadata: md})
		if err != nil {
			t.Fatal(err)
		}
		if i != 2 {
			want = append(want, sbx.ID)
		}
	}

	opts := soulbox.ListOptions{Metadata: map[string]string{"team": "a", "x": ""}, States: []soulbox.State{soulbox.StateRunning, soulbox.StatePaused}, Limit: 2}
	page, next, err := c.List(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := fake.LastRequest("/v2/sandboxes")
	if got := req.Query.Get("metadata"); got != "team=a&x=" {
		t.Errorf("metadata query = %q, want %q", got, "team=a&x=")
	}
	if got := req.Query.Get("state"); got != "running,paused" {
		t.Errorf("state query = %q", got)
	}
	if got := req.Query.Get("limit"); got != "2" {
		t.Errorf("limit query = %q", got)
	}
	// "x" is not set on any sandbox, so nothing matches "x=" exactly.
	if len(page) != 0 || next != "" {
		t.Errorf("page = %v, next = %q; want empty", page, next)
	}

	opts.Metadata = map[string]string{"team": "a"}
	page, next, err = c.List(ctx, opts)
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("first page = %d items, next %q, err %v", len(page), next, err)
	}
	var got []string
	for info, err := range c.ListAll(ctx, opts) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, info.ID)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListAll = %v, want %v", got, want)
	}
	// ListAll stops when the caller breaks.
	n := 0
	for range c.ListAll(ctx, opts) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break: %d iterations", n)
	}
	for _, err := range c.ListAll(ctx, soulbox.ListOptions{Limit: -1}) {
		if !errors.Is(err, soulbox.ErrInvalid) {
			t.Errorf("negative limit: err = %v", err)
		}
	}
}
