package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

func TestCp(t *testing.T) {
	fake, id := newFakeSandbox(t)
	root := fake.SandboxDir(id)
	local := t.TempDir()
	src := filepath.Join(local, "in.txt")
	if err := os.WriteFile(src, []byte("from disk"), 0o600); err != nil {
		t.Fatal(err)
	}

	uploads := []struct {
		name, stdin, src, dst, hostPath, want string
	}{
		{"file to path", "", src, id + ":/tmp/a.txt", "tmp/a.txt", "from disk"},
		{"file into dir", "", src, id + ":/tmp/", "tmp/in.txt", "from disk"},
		{"relative to home", "", src, id + ":docs/b.txt", "home/user/docs/b.txt", "from disk"},
		{"stdin", "from stdin", "-", id + ":/tmp/c.txt", "tmp/c.txt", "from stdin"},
	}
	for _, tc := range uploads {
		t.Run("upload "+tc.name, func(t *testing.T) {
			res := runCLI(t, fake, tc.stdin, "cp", tc.src, tc.dst)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if b, err := os.ReadFile(filepath.Join(root, tc.hostPath)); err != nil || string(b) != tc.want {
				t.Errorf("sandbox file = %q, %v; want %q", b, err, tc.want)
			}
		})
	}

	res := runCLI(t, fake, "", "cp", id+":/tmp/c.txt", "-")
	if res.code != 0 || res.stdout != "from stdin" {
		t.Errorf("download to stdout: %d %q %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, fake, "", "cp", id+":/tmp/a.txt", local)
	if b, _ := os.ReadFile(filepath.Join(local, "a.txt")); res.code != 0 || string(b) != "from disk" {
		t.Errorf("download into dir: %d %q %q", res.code, b, res.stderr)
	}
	dst := filepath.Join(local, "kept.txt")
	if err := os.WriteFile(dst, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, fake, "", "cp", id+":/tmp/missing", dst)
	if res.code != exitFailure || !strings.Contains(res.stderr, "not found") {
		t.Errorf("missing remote: %d %q", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(dst); string(b) != "keep me" {
		t.Errorf("a failed download changed the destination: %q", b)
	}
	if matches, _ := filepath.Glob(filepath.Join(local, ".soulbox-cp-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
	res = runCLI(t, fake, "", "cp", id+":/tmp/a.txt", dst)
	if b, _ := os.ReadFile(dst); res.code != 0 || string(b) != "from disk" {
		t.Errorf("download over a file: %d %q %q", res.code, b, res.stderr)
	}
	res = runCLI(t, fake, "", "cp", local, id+":/tmp/x")
	if res.code != exitUsage || !strings.Contains(res.stderr, "directory") {
		t.Errorf("upload of a directory: %d %q", res.code, res.stderr)
	}
}

func TestFilesLs(t *testing.T) {
	fake, id := newFakeSandbox(t)
	root := fake.SandboxDir(id)
	if err := os.MkdirAll(filepath.Join(root, "home/user/d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "home/user/d/f.txt"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, fake, "", "files", "ls", id, "d")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "TYPE") || !strings.Contains(res.stdout, "/home/user/d/f.txt") ||
		!strings.Contains(res.stdout, "/home/user/d/e") {
		t.Errorf("ls: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, fake, "", "files", "ls", "--json", "--depth", "2", id, "/home/user")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &entries); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, res.stdout)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e["path"].(string))
	}
	if got := strings.Join(paths, " "); got != "/home/user/d /home/user/d/e /home/user/d/f.txt" {
		t.Errorf("paths = %s", got)
	}
	res = runCLI(t, fake, "", "files", "ls", id, "/nope")
	if res.code != exitFailure || !strings.Contains(res.stderr, "not found") {
		t.Errorf("ls missing: %d %q", res.code, res.stderr)
	}
}

func TestFilesWatch(t *testing.T) {
	fake, id := newFakeSandbox(t)
	t.Setenv("SOULBOX_URL", fake.URL)
	t.Setenv("SOULBOX_API_KEY", fake.APIKey)
	client, err := soulbox.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	sbx, err := client.Connect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}

	// Run the command directly: Main's context ends only on a signal.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out syncBuffer
	cmd := newFilesCmd()
	cmd.SetArgs([]string{"watch", "--recursive", id, "/tmp"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	// Write until the watch (started asynchronously) reports it.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "write sub/x.txt\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no event; output %q", out.String())
		}
		if err := sbx.Files.WriteFile(ctx, "/tmp/sub/x.txt", []byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop when interrupted")
	}
}
