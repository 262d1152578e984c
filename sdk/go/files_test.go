package soulbox_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	"github.com/soulbox-dev/soulbox/sdk/go/filesig"
)

func TestFiles(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	fs := sbx.Files

	if err := fs.WriteFile(ctx, "notes/a.txt", []byte("alpha")); err != nil {
		t.Fatal(err)
	}
	req, _ := fake.LastRequest("/files")
	if req.Method != http.MethodPost || req.Query.Get("path") != "notes/a.txt" || req.Query.Get("username") != "user" ||
		req.Header.Get("Content-Type") != "application/octet-stream" || req.Header.Get("X-Access-Token") != fake.AccessToken(sbx.ID) {
		t.Errorf("upload request = %+v", req)
	}
	if b, err := os.ReadFile(filepath.Join(fake.SandboxDir(sbx.ID), "home/user/notes/a.txt")); err != nil || string(b) != "alpha" {
		t.Errorf("stored = %q, %v", b, err)
	}
	got, err := fs.ReadFile(ctx, "/home/user/notes/a.txt")
	if err != nil || string(got) != "alpha" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	var buf bytes.Buffer
	if err := fs.Read(ctx, "notes/a.txt", &buf); err != nil || buf.String() != "alpha" {
		t.Errorf("Read = %q, %v", buf.String(), err)
	}

	st, err := fs.Stat(ctx, "notes/a.txt")
	if err != nil || st.Type != soulbox.TypeFile || st.Size != 5 || st.Path != "/home/user/notes/a.txt" || st.Name != "a.txt" || st.ModTime.IsZero() {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	for p, want := range map[string]bool{"notes": true, "notes/b.txt": false} {
		if ok, err := fs.Exists(ctx, p); err != nil || ok != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", p, ok, err, want)
		}
	}

	created, err := fs.MakeDir(ctx, "notes/sub/deeper")
	if err != nil || !created {
		t.Errorf("MakeDir = %v, %v", created, err)
	}
	created, err = fs.MakeDir(ctx, "notes/sub/deeper")
	if err != nil || created {
		t.Errorf("MakeDir again = %v, %v; want false, nil", created, err)
	}

	entries, err := fs.List(ctx, "notes", 0)
	if err != nil {
		t.Fatal(err)
	}
	if names := entryNames(entries); names != "a.txt,sub" {
		t.Errorf("List depth 1 = %s", names)
	}
	entries, err = fs.List(ctx, "notes", 3)
	if err != nil {
		t.Fatal(err)
	}
	if names := entryNames(entries); names != "a.txt,sub,deeper" {
		t.Errorf("List depth 3 = %s", names)
	}

	moved, err := fs.Move(ctx, "notes/a.txt", "/tmp/b.txt")
	if err != nil || moved.Path != "/tmp/b.txt" {
		t.Errorf("Move = %+v, %v", moved, err)
	}
	if err := fs.Remove(ctx, "notes"); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(ctx, "notes"); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Stat removed: %v", err)
	}
	if err := fs.Remove(ctx, "notes"); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Remove twice: %v", err)
	}
	if _, err := fs.List(ctx, "notes", -1); !errors.Is(err, soulbox.ErrInvalid) {
		t.Errorf("negative depth: %v", err)
	}

	// As changes the user: relative paths resolve in root's home.
	if err := fs.As("root").WriteFile(ctx, "r.txt", []byte("r")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fake.SandboxDir(sbx.ID), "root/r.txt")); err != nil {
		t.Errorf("As(root) wrote elsewhere: %v", err)
	}
	if ok, _ := fs.Exists(ctx, "r.txt"); ok {
		t.Error("As modified the original Files")
	}
}

func entryNames(es []soulbox.EntryInfo) string {
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	return strings.Join(names, ",")
}

// pattern yields n bytes without holding them.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	m := min(int64(len(b)), p.n-p.off)
	for i := range m {
		b[i] = byte((p.off + i) % 251)
	}
	p.off += m
	return int(m), nil
}

func TestWriteStreams(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	const size = 50 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := sbx.Files.Write(t.Context(), "/tmp/big", &pattern{n: size}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Client and fake server share this process, so this bounds both: a
	// buffered upload would allocate at least the 50 MiB once.
	grew := after.TotalAlloc - before.TotalAlloc
	t.Logf("uploading 50 MiB allocated %d KiB in client and fake", grew>>10)
	if grew > 20<<20 {
		t.Errorf("uploading 50 MiB allocated %d MiB", grew>>20)
	}
	req, _ := fake.LastRequest("/files")
	if req.ContentLength != -1 || len(req.TransferEncoding) == 0 || req.TransferEncoding[0] != "chunked" {
		t.Errorf("upload had Content-Length %d, Transfer-Encoding %v; want a chunked stream", req.ContentLength, req.TransferEncoding)
	}
	fi, err := os.Stat(filepath.Join(fake.SandboxDir(sbx.ID), "tmp/big"))
	if err != nil || fi.Size() != size {
		t.Fatalf("stored file: %v, %v", fi, err)
	}

	// Reading it back streams too, and the bytes are the same.
	runtime.GC()
	runtime.ReadMemStats(&before)
	h := &checker{}
	if err := sbx.Files.Read(t.Context(), "/tmp/big", h); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if h.n != size || h.bad {
		t.Errorf("read back %d bytes, mismatch %v", h.n, h.bad)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 20<<20 {
		t.Errorf("downloading 50 MiB allocated %d MiB", grew>>20)
	}
}

type checker struct {
	n   int64
	bad bool
}

func (c *checker) Write(b []byte) (int, error) {
	for i, x := range b {
		if x != byte((c.n+int64(i))%251) {
			c.bad = true
		}
	}
	c.n += int64(len(b))
	return len(b), nil
}

func TestSignedURLs(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	if err := sbx.Files.WriteFile(ctx, "/home/user/report.txt", []byte("secret report")); err != nil {
		t.Fatal(err)
	}
	token := fake.AccessToken(sbx.ID)

	raw := sbx.DownloadURL("/home/user/report.txt", soulbox.URLOptions{Expires: time.Hour})
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	exp, err := strconv.ParseInt(q.Get("signature_expiration"), 10, 64)
	if err != nil || time.Until(time.Unix(exp, 0)) < 59*time.Minute {
		t.Fatalf("signature_expiration = %q", q.Get("signature_expiration"))
	}
	if want := filesig.Sign("/home/user/report.txt", filesig.Read, "user", token, time.Unix(exp, 0)); q.Get("signature") != want {
		t.Errorf("signature = %s, want %s", q.Get("signature"), want)
	}
	if u.Path != "/files" || q.Get("path") != "/home/user/report.txt" || q.Get("username") != "user" {
		t.Errorf("URL = %s", raw)
	}
	// The URL works alone: no API key, no access token.
	resp, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "secret report" {
		t.Errorf("GET signed URL = %d %q", resp.StatusCode, body)
	}
	// It allows exactly that path.
	q.Set("path", "/home/user/other.txt")
	u.RawQuery = q.Encode()
	resp, err = http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered URL: status %d, want 401", resp.StatusCode)
	}

	// Never-expiring upload URL for another user.
	up := sbx.UploadURL("/root/in.txt", soulbox.URLOptions{User: "root"})
	uu, _ := url.Parse(up)
	if uu.Query().Has("signature_expiration") {
		t.Errorf("upload URL has an expiry: %s", up)
	}
	if want := filesig.Sign("/root/in.txt", filesig.Write, "root", token, time.Time{}); uu.Query().Get("signature") != want {
		t.Errorf("upload signature = %s, want %s", uu.Query().Get("signature"), want)
	}
	resp, err = http.Post(up, "application/octet-stream", strings.NewReader("uploaded"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST upload URL: %d", resp.StatusCode)
	}
	if b, _ := sbx.Files.ReadFile(ctx, "/root/in.txt"); string(b) != "uploaded" {
		t.Errorf("uploaded content = %q", b)
	}
}

func TestWatch(t *testing.T) {
	_, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	if _, err := sbx.Files.MakeDir(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	w, err := sbx.Files.Watch(ctx, "w", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := sbx.Files.WriteFile(ctx, "w/a.txt", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sbx.Files.MakeDir(ctx, "w/sub"); err != nil {
		t.Fatal(err)
	}
	if err := sbx.Files.WriteFile(ctx, "w/sub/b.txt", []byte("y")); err != nil {
		t.Fatal(err)
	}
	want := []soulbox.FileEvent{
		{Type: soulbox.EventWrite, Name: "a.txt"},
		{Type: soulbox.EventCreate, Name: "sub"},
		{Type: soulbox.EventWrite, Name: "sub/b.txt"},
	}
	for _, wantEv := range want {
		ctx, cancel := contextWithTimeout(t, 5*time.Second)
		ev, err := w.Next(ctx)
		cancel()
		if err != nil || ev != wantEv {
			t.Errorf("Next = %+v, %v; want %+v", ev, err, wantEv)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Next after Close = %v, want io.EOF", err)
	}
	if _, err := sbx.Files.Watch(ctx, "missing", false); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Watch missing dir: %v", err)
	}
}
