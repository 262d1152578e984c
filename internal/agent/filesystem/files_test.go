package filesystem

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func filesURL(e *env, path string, extra ...string) string {
	q := url.Values{"path": {path}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return e.url + FilesPath + "?" + q.Encode()
}

// do sends req and returns the status and body.
func do(t *testing.T, e *env, req *http.Request) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := e.http.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// putOctet uploads content as application/octet-stream to path.
func putOctet(t *testing.T, e *env, path, content string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, filesURL(e, path), strings.NewReader(content))
	req.Header.Set("Content-Type", "application/octet-stream")
	for k, v := range hdr {
		req.Header[k] = v
	}
	return do(t, e, req)
}

func get(t *testing.T, e *env, path string, extra ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, filesURL(e, path, extra...), nil)
	return do(t, e, req)
}

// errorBody checks an envd error body and returns its message.
func errorBody(t *testing.T, status int, body []byte) string {
	t.Helper()
	var eb struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Code != status || eb.Message == "" {
		t.Errorf("error body %q (%v), want {code: %d, message}", body, err, status)
	}
	return eb.Message
}

func TestUploadOctetStreamAndDownload(t *testing.T) {
	e := newEnv(t, Config{})
	status, body := putOctet(t, e, "d/e/hello.txt", "hello", nil)
	if status != http.StatusOK {
		t.Fatalf("upload: %d %s", status, body)
	}
	var written []writtenEntry
	if err := json.Unmarshal(body, &written); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(e.home, "d/e/hello.txt")
	if len(written) != 1 || written[0] != (writtenEntry{Name: "hello.txt", Type: "file", Path: want}) {
		t.Errorf("response %s", body)
	}
	for _, p := range []string{"d", "d/e", "d/e/hello.txt"} {
		if uid, gid := owner(t, filepath.Join(e.home, p)); uid != testUID || gid != testGID {
			t.Errorf("%s owned by %d:%d, want the user", p, uid, gid)
		}
	}
	if status, body := get(t, e, "~/d/e/hello.txt"); status != http.StatusOK || string(body) != "hello" {
		t.Errorf("download: %d %q", status, body)
	}
	// Overwriting keeps the mode and leaves no temporary file.
	if err := os.Chmod(want, 0o600); err != nil {
		t.Fatal(err)
	}
	if status, body := putOctet(t, e, want, "bye", nil); status != http.StatusOK {
		t.Fatalf("overwrite: %d %s", status, body)
	}
	if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("after overwrite: %v %v, want mode 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(filepath.Dir(want))
	if len(ents) != 1 {
		t.Errorf("directory holds %v, want only hello.txt", ents)
	}
	// octet-stream needs a path.
	if status, _ := putOctet(t, e, "", "x", nil); status != http.StatusBadRequest {
		t.Errorf("octet-stream without path: %d, want 400", status)
	}
	// An unknown user is 401.
	if status, body := get(t, e, "x", "username", "mallory"); status != http.StatusUnauthorized {
		t.Errorf("unknown user: %d %s", status, body)
	}
}

func TestUploadMultipart(t *testing.T) {
	e := newEnv(t, Config{})
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("other", "ignored")
	for name, content := range map[string]string{"m/one.txt": "1", filepath.Join(e.home, "m/two.txt"): "22"} {
		w, _ := mw.CreateFormFile("file", name)
		io.WriteString(w, content)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.url+FilesPath+"?username=user", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	status, body := do(t, e, req)
	if status != http.StatusOK {
		t.Fatalf("upload: %d %s", status, body)
	}
	var written []writtenEntry
	json.Unmarshal(body, &written)
	if len(written) != 2 {
		t.Errorf("response %s, want two entries", body)
	}
	for name, want := range map[string]string{"m/one.txt": "1", "m/two.txt": "22"} {
		if got, err := os.ReadFile(filepath.Join(e.home, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", name, got, err, want)
		}
	}

	// With a path, a single part goes there whatever its file name.
	buf.Reset()
	mw = multipart.NewWriter(&buf)
	w, _ := mw.CreateFormFile("file", "ignored.txt")
	io.WriteString(w, "3")
	mw.Close()
	req, _ = http.NewRequest(http.MethodPost, filesURL(e, "m/three.txt"), &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if status, body := do(t, e, req); status != http.StatusOK {
		t.Fatalf("upload with path: %d %s", status, body)
	}
	if got, _ := os.ReadFile(filepath.Join(e.home, "m/three.txt")); string(got) != "3" {
		t.Errorf("three.txt: %q", got)
	}
}

func TestGzipBothWays(t *testing.T) {
	e := newEnv(t, Config{})
	content := strings.Repeat("compressible ", 10000)
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	io.WriteString(zw, content)
	zw.Close()
	status, body := putOctet(t, e, "z.txt", zbuf.String(), http.Header{"Content-Encoding": {"gzip"}})
	if status != http.StatusOK {
		t.Fatalf("gzip upload: %d %s", status, body)
	}
	if got, _ := os.ReadFile(filepath.Join(e.home, "z.txt")); string(got) != content {
		t.Fatalf("stored %d bytes, want the %d decompressed", len(got), len(content))
	}
	req, _ := http.NewRequest(http.MethodGet, filesURL(e, "z.txt"), nil)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: no transparent decoding
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", res.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != content {
		t.Errorf("gzip download: %d bytes, %v", len(got), err)
	}
	// A bad gzip body is the client's fault.
	if status, _ := putOctet(t, e, "bad.txt", "not gzip", http.Header{"Content-Encoding": {"gzip"}}); status != http.StatusBadRequest {
		t.Errorf("bad gzip: %d, want 400", status)
	}
	if status, body := putOctet(t, e, "bad.txt", "x", http.Header{"Content-Encoding": {"br"}}); status != http.StatusUnsupportedMediaType {
		t.Errorf("brotli: %d %s, want 415", status, body)
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		header, want string
		ok           bool
	}{
		{"", "identity", true},
		{"gzip", "gzip", true},
		{"gzip, deflate, br", "gzip", true},
		{"gzip;q=0", "identity", true},
		{"br", "identity", true},
		{"*", "gzip", true},
		{"identity;q=0, gzip;q=0.5", "gzip", true},
		{"identity;q=0", "", false},
		{"*;q=0", "", false},
		{"identity;q=1, gzip;q=0.5", "identity", true},
	} {
		got, ok := negotiate(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("negotiate(%q) = %q, %v; want %q, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestUploadOverLimit(t *testing.T) {
	e := newEnv(t, Config{UploadLimit: 1 << 20})
	content := strings.Repeat("x", 1<<20+100<<10)
	status, body := putOctet(t, e, "big/too.big", content, nil)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("upload over the limit: %d %s, want 413", status, body)
	}
	errorBody(t, status, body)
	ents, err := os.ReadDir(filepath.Join(e.home, "big"))
	if err != nil || len(ents) != 0 {
		t.Errorf("left behind: %v %v", ents, err)
	}
	// Exactly the limit is fine.
	if status, body := putOctet(t, e, "big/ok", content[:1<<20], nil); status != http.StatusOK {
		t.Errorf("upload of the limit: %d %s", status, body)
	}
}

// Downloads refuse anything but regular files, without blocking.
func TestDownloadRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	fifo := filepath.Join(e.home, "fifo")
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		status int
		msg    string
	}{
		{"fifo", http.StatusBadRequest, "named pipe"},
		{"/dev/null", http.StatusBadRequest, "character device"},
		{"~", http.StatusBadRequest, "directory"},
		{"a\x00b", http.StatusBadRequest, "NUL"},
		{"missing.txt", http.StatusNotFound, "no such file"},
	} {
		status, body := get(t, e, tc.path) // do() bounds it with a timeout
		if status != tc.status {
			t.Errorf("GET %q: %d %s, want %d", tc.path, status, body, tc.status)
			continue
		}
		if msg := errorBody(t, status, body); !strings.Contains(msg, tc.msg) {
			t.Errorf("GET %q: message %q, want it to mention %q", tc.path, msg, tc.msg)
		}
	}
	// Uploading onto a FIFO is refused too (the FIFO is never opened).
	if status, body := putOctet(t, e, "fifo", "x", nil); status != http.StatusBadRequest {
		t.Errorf("upload onto a fifo: %d %s", status, body)
	}
}

func TestUploadPermissionDenied(t *testing.T) {
	e := newEnv(t, Config{})
	if err := os.Mkdir(filepath.Join(e.home, "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	status, body := putOctet(t, e, "ro/f", "x", nil)
	if status != http.StatusForbidden {
		t.Errorf("upload into a root-owned directory: %d %s, want 403", status, body)
	}
	errorBody(t, status, body)
	if status, _ := putOctet(t, e, "ro/f", "x", http.Header{}); status == http.StatusOK {
		t.Error("upload succeeded")
	}
	if err := os.WriteFile(filepath.Join(e.home, "ro/secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, _ := get(t, e, "ro/secret"); status != http.StatusForbidden {
		t.Errorf("download of a root-only file: %d, want 403", status)
	}
}

// A 100 MB file goes up and down streamed: the SHA-256 matches and the
// heap of the whole test process (client and server) stays far below the
// file's size.
func TestLargeTransferIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	e := newEnv(t, Config{})
	const size = 100 << 20
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	up := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), up)
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		w, _ := mw.CreateFormFile("file", "big.bin")
		if _, err := io.Copy(w, src); err != nil {
			pw.CloseWithError(err)
			return
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, e.url+FilesPath, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s", res.Status)
	}

	req, _ = http.NewRequest(http.MethodGet, filesURL(e, "big.bin"), nil)
	req.Header.Set("Accept-Encoding", "identity")
	res, err = e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	down := sha256.New()
	n, err := io.Copy(down, res.Body)
	res.Body.Close()
	close(stop)
	<-sampled
	if err != nil || n != size {
		t.Fatalf("downloaded %d bytes (%v), want %d", n, err, size)
	}
	if fmt.Sprintf("%x", up.Sum(nil)) != fmt.Sprintf("%x", down.Sum(nil)) {
		t.Error("SHA-256 of the download differs from the upload's")
	}
	if p := peak.Load(); p > 32<<20 {
		t.Errorf("heap in use peaked at %d MiB during a %d MiB transfer: not streamed", p>>20, size>>20)
	} else {
		t.Logf("heap in use peaked at %.1f MiB", float64(p)/(1<<20))
	}
}
