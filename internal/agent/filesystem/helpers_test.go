package filesystem

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
)

// testUID and testGID are the ids "user" maps to in tests.
const testUID, testGID = 1000, 1000

// requireRoot skips a test that needs CAP_SETUID and CAP_SETGID (to set
// file system ids), or fails it under CI.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs CAP_SETUID and CAP_SETGID (run as root)")
	}
	t.Skip("needs CAP_SETUID and CAP_SETGID (run as root)")
}

type env struct {
	svc    *Service
	client filesystemconnect.FilesystemClient
	url    string // of the HTTP server
	http   *http.Client
	home   string // "user"'s home, owned by testUID
	base   string // the home's parent, root-owned
}

// newEnv serves a Service whose "user" is testUID with a fresh home.
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	requireRoot(t)
	base, err := os.MkdirTemp("", "soulbox-fs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, testUID, testGID); err != nil {
		t.Fatal(err)
	}
	cfg.User = func(name string) (User, error) {
		switch name {
		case "user":
			return User{UID: testUID, GID: testGID, Home: home}, nil
		case "root":
			return User{UID: 0, GID: 0, Home: base}, nil
		}
		return User{}, errors.New("no such user in the sandbox")
	}
	svc := New(cfg)
	t.Cleanup(func() { svc.Close() })
	mux := http.NewServeMux()
	mux.Handle(svc.Handler())
	mux.Handle(FilesPath, svc.FilesHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{
		svc:    svc,
		client: filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL),
		url:    srv.URL,
		http:   srv.Client(),
		home:   home,
		base:   base,
	}
}

// as returns a request carrying the Basic authorization of user.
func as[T any](user string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
	return req
}

// owner returns the uid and gid of path.
func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}
