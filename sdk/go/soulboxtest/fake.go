// Package soulboxtest provides a fake SoulBox daemon for client-side tests
// of the Go SDK and the soulbox CLI.
//
// The fake implements the daemon's HTTP contract (the control plane under
// /sandboxes and /v2/sandboxes, and the data plane routed by the
// E2b-Sandbox-Id, E2b-Sandbox-Port and X-Access-Token headers) well enough
// to check what a client sends and how it reads the answers. It is not a
// sandbox and isolates nothing: each fake sandbox's files live in a
// temporary directory on the test host, and its "processes" are a toy
// interpreter that never executes anything on the host. It understands
// "/bin/bash -l -c SCRIPT" and plain argv, where SCRIPT is statements
// separated by ";":
//
//	echo WORDS [>&2]   print WORDS and a newline (to stderr with >&2)
//	cat                copy stdin to stdout until it is closed
//	sleep SECONDS      wait (a signal ends it early)
//	pwd | whoami       the working directory | the acting user
//	printenv NAME      a variable given at start or at sandbox creation
//	true | false       exit 0 | 1
//	exit N             end with exit code N
//
// On a pseudo-terminal the toy echoes what is typed, runs each line as a
// statement and ends at "exit [N]". Tests of the real daemon and agent
// belong in the main module's end-to-end tests, not here.
package soulboxtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/filesig"
)

// AgentPort is the port the data plane's E2b-Sandbox-Port header must name.
const AgentPort = "49983"

// Request is one request the fake received, for assertions.
type Request struct {
	Method           string
	Path             string // URL path, or the Connect procedure ("/process.Process/Start")
	Query            url.Values
	Header           http.Header
	Body             []byte        // JSON body of a control-plane request
	ContentLength    int64         // as received (-1: streamed without a length)
	TransferEncoding []string      // as received
	Msg              proto.Message // the request message of a Connect call
}

// FakeServer is a fake SoulBox daemon on a local port. It is closed when
// the test ends. Its methods are safe for concurrent use.
type FakeServer struct {
	URL    string // base URL, e.g. http://127.0.0.1:41234
	APIKey string // the only API key it accepts (sb_ + 40 hex digits)

	srv    *httptest.Server
	ctx    context.Context // ends when the test ends; stops toy processes
	tmpDir string

	mu        sync.Mutex
	sandboxes map[string]*sandbox
	order     []string
	nextID    int
	requests  []Request
}

// NewFakeServer starts a fake daemon for the duration of the test.
func NewFakeServer(t testing.TB) *FakeServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &FakeServer{
		APIKey:    "sb_" + randomHex(20),
		ctx:       ctx,
		tmpDir:    t.TempDir(),
		sandboxes: map[string]*sandbox{},
	}
	f.srv = httptest.NewServer(f.handler())
	f.URL = f.srv.URL
	t.Cleanup(func() {
		cancel()
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.sandboxes {
			s.root.Close()
		}
	})
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Requests returns every request received so far, oldest first.
func (f *FakeServer) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// LastRequest returns the latest request to the given path or procedure.
func (f *FakeServer) LastRequest(path string) (Request, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.requests) - 1; i >= 0; i-- {
		if f.requests[i].Path == path {
			return f.requests[i], true
		}
	}
	return Request{}, false
}

func (f *FakeServer) record(r Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r)
}

// SandboxDir returns the host directory that holds a fake sandbox's files
// ("/home/user/a" in the sandbox is SandboxDir(id)+"/home/user/a").
func (f *FakeServer) SandboxDir(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sandboxes[id]; s != nil {
		return s.dir
	}
	return ""
}

// AccessToken returns a fake sandbox's envd access token.
func (f *FakeServer) AccessToken(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.sandboxes[id]; s != nil {
		return s.token
	}
	return ""
}

func (f *FakeServer) lookup(id string) *sandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sandboxes[id]
}

// writeError writes the daemon's JSON error shape.
func writeError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, map[string]any{"code": status, "message": fmt.Sprintf(format, a...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *FakeServer) handler() http.Handler {
	control := http.NewServeMux()
	control.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	control.HandleFunc("POST /sandboxes", f.create)
	control.HandleFunc("GET /sandboxes/{id}", f.withSandbox(f.get))
	control.HandleFunc("GET /v2/sandboxes", f.list)
	control.HandleFunc("DELETE /sandboxes/{id}", f.withSandbox(f.kill))
	control.HandleFunc("POST /sandboxes/{id}/timeout", f.withSandbox(f.setTimeout))
	control.HandleFunc("POST /sandboxes/{id}/pause", f.withSandbox(f.pause))
	control.HandleFunc("POST /sandboxes/{id}/resume", f.withSandbox(f.resume))
	control.HandleFunc("POST /sandboxes/{id}/connect", f.withSandbox(f.connect))
	control.HandleFunc("GET /sandboxes/{id}/metrics", f.withSandbox(f.metrics))

	data := http.NewServeMux()
	data.Handle(processconnect.NewProcessHandler(&processService{f: f}))
	data.Handle(filesystemconnect.NewFilesystemHandler(&filesystemService{f: f}))
	data.HandleFunc("GET /files", f.download)
	data.HandleFunc("POST /files", f.upload)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		signed := r.URL.Path == "/files" && r.URL.Query().Has("signature")
		if r.Header.Get("E2b-Sandbox-Id") == "" && !signed {
			f.serveControl(control, w, r)
			return
		}
		f.serveData(data, w, r, signed)
	})
}

func (f *FakeServer) serveControl(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), ContentLength: r.ContentLength}
	if r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeError(w, http.StatusBadRequest, "reading body: %v", err)
			return
		}
		rec.Body = body
		r.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	f.record(rec)
	if r.URL.Path != "/health" && r.Header.Get("X-API-Key") != f.APIKey {
		writeError(w, http.StatusUnauthorized, "invalid or missing API key")
		return
	}
	if _, pattern := mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "no route %s %s", r.Method, r.URL.Path)
		return
	}
	mux.ServeHTTP(w, r)
}

type ctxKey struct{}

func (f *FakeServer) serveData(mux *http.ServeMux, w http.ResponseWriter, r *http.Request, signed bool) {
	if !strings.HasPrefix(r.URL.Path, "/process.Process/") && !strings.HasPrefix(r.URL.Path, "/filesystem.Filesystem/") {
		f.record(Request{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(),
			ContentLength: r.ContentLength, TransferEncoding: slices.Clone(r.TransferEncoding),
		})
	}
	id := r.Header.Get("E2b-Sandbox-Id")
	if signed && id == "" {
		id = r.URL.Query().Get("sandbox_id")
	}
	s := f.lookup(id)
	if s == nil {
		writeError(w, http.StatusNotFound, "sandbox %q not found", id)
		return
	}
	if !signed {
		if r.Header.Get("E2b-Sandbox-Port") != AgentPort {
			writeError(w, http.StatusBadGateway, "nothing listens on port %q of the sandbox", r.Header.Get("E2b-Sandbox-Port"))
			return
		}
		if r.Header.Get("X-Access-Token") != s.token {
			writeError(w, http.StatusUnauthorized, "invalid access token")
			return
		}
	}
	if s.isPaused() {
		writeError(w, http.StatusBadGateway, "sandbox %q is paused", id)
		return
	}
	mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
}

func sandboxFrom(ctx context.Context) *sandbox {
	s, _ := ctx.Value(ctxKey{}).(*sandbox)
	return s
}

// userFrom reads the acting user from "Authorization: Basic base64(user:)".
func userFrom(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return "user", nil
	}
	enc, ok := strings.CutPrefix(v, "Basic ")
	if !ok {
		return "", errors.New("authorization must be Basic with a user name")
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", errors.New("authorization is not valid base64")
	}
	user, _, _ := strings.Cut(string(raw), ":")
	if user == "" {
		user = "user"
	}
	return user, nil
}

// --- control plane -------------------------------------------------------

type limitsJSON struct {
	CPUs       float64 `json:"cpus,omitempty"`
	MemoryMB   int     `json:"memoryMB,omitempty"`
	DiskSizeMB int     `json:"diskSizeMB,omitempty"`
	Pids       int     `json:"pids,omitempty"`
}

type sandboxJSON struct {
	SandboxID       string            `json:"sandboxID"`
	TemplateID      string            `json:"templateID"`
	ClientID        string            `json:"clientID"`
	StartedAt       *time.Time        `json:"startedAt,omitempty"`
	EndAt           *time.Time        `json:"endAt,omitempty"`
	EnvdVersion     string            `json:"envdVersion"`
	EnvdAccessToken string            `json:"envdAccessToken,omitempty"`
	Domain          *string           `json:"domain"`
	CPUCount        int               `json:"cpuCount,omitempty"`
	MemoryMB        int               `json:"memoryMB,omitempty"`
	DiskSizeMB      int               `json:"diskSizeMB,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	State           string            `json:"state,omitempty"`
	Limits          *limitsJSON       `json:"limits,omitempty"`
}

func (f *FakeServer) withSandbox(h func(http.ResponseWriter, *http.Request, *sandbox)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := f.lookup(r.PathValue("id"))
		if s == nil {
			writeError(w, http.StatusNotFound, "sandbox %q not found", r.PathValue("id"))
			return
		}
		h(w, r, s)
	}
}

func decodeStrict(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (f *FakeServer) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TemplateID string            `json:"templateID"`
		Timeout    *int64            `json:"timeout"`
		AutoPause  bool              `json:"autoPause"`
		Metadata   map[string]string `json:"metadata"`
		EnvVars    map[string]string `json:"envVars"`
		Limits     *limitsJSON       `json:"limits"`
	}
	if err := decodeStrict(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: %v", err)
		return
	}
	timeout := int64(300)
	if req.Timeout != nil {
		timeout = *req.Timeout
	}
	if timeout <= 0 {
		writeError(w, http.StatusBadRequest, "timeout must be positive")
		return
	}
	if req.TemplateID == "" {
		req.TemplateID = "host"
	}
	if req.TemplateID != "host" {
		writeError(w, http.StatusNotFound, "template %q not found", req.TemplateID)
		return
	}
	lim := limitsJSON{CPUs: 1, MemoryMB: 512, DiskSizeMB: 1024, Pids: 256}
	if l := req.Limits; l != nil {
		if l.CPUs < 0 || l.MemoryMB < 0 || l.DiskSizeMB < 0 || l.Pids < 0 {
			writeError(w, http.StatusBadRequest, "limits must be positive")
			return
		}
		if l.CPUs > 0 {
			lim.CPUs = l.CPUs
		}
		if l.MemoryMB > 0 {
			lim.MemoryMB = l.MemoryMB
		}
		if l.DiskSizeMB > 0 {
			lim.DiskSizeMB = l.DiskSizeMB
		}
		if l.Pids > 0 {
			lim.Pids = l.Pids
		}
	}
	f.mu.Lock()
	f.nextID++
	id := fmt.Sprintf("fake%04d%s", f.nextID, randomHex(4))
	f.mu.Unlock()
	s, err := newSandbox(f, id, filepath.Join(f.tmpDir, id))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	s.template, s.metadata, s.env, s.limits = req.TemplateID, req.Metadata, req.EnvVars, lim
	s.started, s.end = now, now.Add(time.Duration(timeout)*time.Second)
	s.autoPause = req.AutoPause
	f.mu.Lock()
	f.sandboxes[id] = s
	f.order = append(f.order, id)
	f.mu.Unlock()
	writeJSON(w, http.StatusCreated, sandboxJSON{
		SandboxID: id, TemplateID: s.template, ClientID: "soulbox", EnvdVersion: "0.5.7", EnvdAccessToken: s.token,
	})
}

func (s *sandbox) json(withToken bool) sandboxJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	started, end := s.started, s.end
	lim := s.limits
	state := "running"
	if s.paused {
		state = "paused"
	}
	j := sandboxJSON{
		SandboxID: s.id, TemplateID: s.template, ClientID: "soulbox", StartedAt: &started, EndAt: &end,
		EnvdVersion: "0.5.7", CPUCount: int(lim.CPUs + 0.999), MemoryMB: lim.MemoryMB, DiskSizeMB: lim.DiskSizeMB,
		Metadata: s.metadata, State: state, Limits: &lim,
	}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
	}
	if withToken {
		j.EnvdAccessToken = s.token
	}
	return j
}

func (f *FakeServer) get(w http.ResponseWriter, r *http.Request, s *sandbox) {
	writeJSON(w, http.StatusOK, s.json(true))
}

func (f *FakeServer) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	md, err := url.ParseQuery(q.Get("metadata"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid metadata filter: %v", err)
		return
	}
	states := map[string]bool{"running": true, "paused": true}
	if v := q.Get("state"); v != "" {
		states = map[string]bool{}
		for _, st := range strings.Split(v, ",") {
			if st != "running" && st != "paused" {
				writeError(w, http.StatusBadRequest, "invalid state %q", st)
				return
			}
			states[st] = true
		}
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "limit must be 1..100")
			return
		}
		limit = n
	}
	start := 0
	if v := q.Get("nextToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid nextToken")
			return
		}
		start = n
	}
	f.mu.Lock()
	var all []*sandbox
	for _, id := range f.order {
		all = append(all, f.sandboxes[id])
	}
	f.mu.Unlock()
	var matched []sandboxJSON
	for _, s := range all {
		j := s.json(false)
		if !states[j.State] {
			continue
		}
		ok := true
		for k := range md {
			if v, has := j.Metadata[k]; !has || v != md.Get(k) {
				ok = false
			}
		}
		if ok {
			matched = append(matched, j)
		}
	}
	page := []sandboxJSON{}
	if start < len(matched) {
		page = matched[start:min(start+limit, len(matched))]
	}
	if start+limit < len(matched) {
		w.Header().Set("X-Next-Token", strconv.Itoa(start+limit))
	}
	writeJSON(w, http.StatusOK, page)
}

func (f *FakeServer) kill(w http.ResponseWriter, r *http.Request, s *sandbox) {
	f.mu.Lock()
	delete(f.sandboxes, s.id)
	f.order = slices.DeleteFunc(f.order, func(id string) bool { return id == s.id })
	f.mu.Unlock()
	s.stopAll()
	w.WriteHeader(http.StatusNoContent)
}

func timeoutBody(w http.ResponseWriter, r *http.Request, required bool) (time.Duration, bool) {
	var body struct {
		Timeout *int64 `json:"timeout"`
	}
	if err := decodeStrict(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: %v", err)
		return 0, false
	}
	if body.Timeout == nil {
		if required {
			writeError(w, http.StatusBadRequest, "timeout is required")
			return 0, false
		}
		return 300 * time.Second, true
	}
	if *body.Timeout <= 0 {
		writeError(w, http.StatusBadRequest, "timeout must be positive")
		return 0, false
	}
	return time.Duration(*body.Timeout) * time.Second, true
}

func (f *FakeServer) setTimeout(w http.ResponseWriter, r *http.Request, s *sandbox) {
	d, ok := timeoutBody(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	s.end = time.Now().UTC().Truncate(time.Second).Add(d)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *FakeServer) pause(w http.ResponseWriter, r *http.Request, s *sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		writeError(w, http.StatusConflict, "sandbox %q is already paused", s.id)
		return
	}
	s.paused = true
	w.WriteHeader(http.StatusNoContent)
}

func (f *FakeServer) resume(w http.ResponseWriter, r *http.Request, s *sandbox) {
	d, ok := timeoutBody(w, r, false)
	if !ok {
		return
	}
	s.mu.Lock()
	if !s.paused {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "sandbox %q is not paused", s.id)
		return
	}
	s.paused = false
	s.end = time.Now().UTC().Truncate(time.Second).Add(d)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.json(true))
}

func (f *FakeServer) connect(w http.ResponseWriter, r *http.Request, s *sandbox) {
	d, ok := timeoutBody(w, r, false)
	if !ok {
		return
	}
	s.mu.Lock()
	status := http.StatusOK
	if s.paused {
		s.paused = false
		status = http.StatusCreated
	}
	if end := time.Now().UTC().Truncate(time.Second).Add(d); end.After(s.end) {
		s.end = end
	}
	s.mu.Unlock()
	writeJSON(w, status, s.json(true))
}

func (f *FakeServer) metrics(w http.ResponseWriter, r *http.Request, s *sandbox) {
	writeJSON(w, http.StatusOK, []map[string]any{{
		"timestampUnix": time.Now().Unix(), "cpuCount": 1, "cpuUsedPct": 12.5,
		"memUsed": 64 << 20, "memTotal": 512 << 20, "diskUsed": 1 << 20, "diskTotal": 1 << 30,
	}})
}

// --- files ---------------------------------------------------------------

func (f *FakeServer) checkSignature(r *http.Request, s *sandbox, op string) error {
	q := r.URL.Query()
	if !q.Has("signature") {
		return nil // header-authenticated request
	}
	return filesig.Verify(q.Get("signature"), q.Get("signature_expiration"), q.Get("path"), op, q.Get("username"), s.token, time.Now())
}

func (f *FakeServer) download(w http.ResponseWriter, r *http.Request) {
	s := sandboxFrom(r.Context())
	if err := f.checkSignature(r, s, filesig.Read); err != nil {
		writeError(w, http.StatusUnauthorized, "%v", err)
		return
	}
	user := r.URL.Query().Get("username")
	name, err := s.resolve(user, r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	file, err := s.root.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, http.StatusNotFound, "path %q not found", r.URL.Query().Get("path"))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	defer file.Close()
	if st, err := file.Stat(); err != nil || st.IsDir() {
		writeError(w, http.StatusBadRequest, "path %q is a directory", r.URL.Query().Get("path"))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	io.Copy(w, file)
}

func (f *FakeServer) upload(w http.ResponseWriter, r *http.Request) {
	s := sandboxFrom(r.Context())
	if err := f.checkSignature(r, s, filesig.Write); err != nil {
		writeError(w, http.StatusUnauthorized, "%v", err)
		return
	}
	q := r.URL.Query()
	user := q.Get("username")
	type written struct {
		Name string `json:"name"`
		Type string `json:"type"`
		Path string `json:"path"`
	}
	var out []written
	save := func(p string, body io.Reader) error {
		name, err := s.resolve(user, p)
		if err != nil {
			return err
		}
		if dir := path.Dir(name); dir != "." {
			if err := s.root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		file, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(file, body); err != nil {
			file.Close()
			return err
		}
		if err := file.Close(); err != nil {
			return err
		}
		abs := "/" + name
		out = append(out, written{Name: path.Base(abs), Type: "file", Path: abs})
		s.notify(abs, eventWrite)
		return nil
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, "multipart: %v", err)
				return
			}
			if part.FormName() != "file" {
				continue
			}
			p := q.Get("path")
			if p == "" {
				p = part.FileName()
			}
			if err := save(p, part); err != nil {
				writeError(w, http.StatusBadRequest, "%v", err)
				return
			}
		}
	} else if err := save(q.Get("path"), r.Body); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
