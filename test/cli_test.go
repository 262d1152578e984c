package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// cli runs the soulbox CLI against the daemon d with key, returning
// stdout, stderr and the exit status.
func cli(t *testing.T, d *daemon, key, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(soulboxBin, args...)
	cmd.Env = append(os.Environ(), "SOULBOX_URL="+d.url, "SOULBOX_API_KEY="+key)
	return capture(t, cmd, []byte(stdin))
}

// capture runs cmd with stdin and returns its stdout, its stderr and its
// exit status; a command that cannot be run fails the test.
func capture(t *testing.T, cmd *exec.Cmd, stdin []byte) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// TestCLIEndToEnd drives a real daemon with the CLI as a user would.
func TestCLIEndToEnd(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)

	out, errOut, code := cli(t, d, key, "", "sandbox", "create", "--timeout", "120s", "--memory", "256M", "--cpus", "0.5", "--metadata", "owner=cli", "--env", "HELLO=world")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := lines[len(lines)-1]

	if out, _, code := cli(t, d, key, "", "sandbox", "ls", "--metadata", "owner=cli"); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("ls: %d %q", code, out)
	}
	out, _, code = cli(t, d, key, "", "sandbox", "info", "--json", id)
	var info map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["state"] != "running" {
		t.Fatalf("info: %d %q", code, out)
	}
	// exec: output, the command's exit code, stdin, env.
	out, errOut, code = cli(t, d, key, "", "exec", id, "--", "sh", "-c", "echo out $HELLO; echo err >&2; exit 7")
	if code != 7 || out != "out world\n" || errOut != "err\n" {
		t.Fatalf("exec: %d %q %q", code, out, errOut)
	}
	if out, _, code := cli(t, d, key, "abc", "exec", id, "--", "wc", "-c"); code != 0 || strings.TrimSpace(out) != "3" {
		t.Fatalf("exec with stdin: %d %q", code, out)
	}
	// cp both ways.
	local := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(local, []byte("payload\n"), 0o644)
	if _, errOut, code := cli(t, d, key, "", "cp", local, id+":/home/user/in.txt"); code != 0 {
		t.Fatalf("cp up: %d %s", code, errOut)
	}
	if out, _, _ := cli(t, d, key, "", "exec", id, "--", "cat", "/home/user/in.txt"); out != "payload\n" {
		t.Fatalf("uploaded file: %q", out)
	}
	back := filepath.Join(t.TempDir(), "back.txt")
	if _, errOut, code := cli(t, d, key, "", "cp", id+":/home/user/in.txt", back); code != 0 {
		t.Fatalf("cp down: %d %s", code, errOut)
	}
	if b, _ := os.ReadFile(back); string(b) != "payload\n" {
		t.Fatalf("downloaded %q", b)
	}
	if out, _, code := cli(t, d, key, "", "files", "ls", id, "/home/user"); code != 0 || !strings.Contains(out, "in.txt") {
		t.Fatalf("files ls: %d %q", code, out)
	}
	// An interactive shell on a terminal.
	shell := exec.Command(soulboxBin, "shell", id)
	shell.Env = append(os.Environ(), "SOULBOX_URL="+d.url, "SOULBOX_API_KEY="+key)
	tty, err := pty.StartWithSize(shell, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var screen bytes.Buffer
	done := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				close(done)
				return
			}
		}
	}()
	waitScreen := func(s string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ok := strings.Contains(screen.String(), s)
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("shell never showed %q: %q", s, screen.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tty.Write([]byte("tty | sed 's/^/TTY=/'; stty size | sed 's/^/SIZE=/'\r"))
	waitScreen("TTY=/dev/pts/")
	waitScreen("SIZE=24 80")
	// A resize of the local terminal (SIGWINCH) reaches the sandbox's.
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	tty.Write([]byte("stty size | sed 's/^/SIZE=/'; exit 4\r"))
	waitScreen("SIZE=30 100")
	werr := shell.Wait()
	tty.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("shell exit: %v", werr)
	}
	// Lifecycle.
	for _, args := range [][]string{{"sandbox", "pause", id}, {"sandbox", "resume", id}, {"sandbox", "timeout", id, "60s"}, {"sandbox", "kill", id}} {
		if _, errOut, code := cli(t, d, key, "", args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, errOut)
		}
	}
	// Errors: a message and a non-zero status.
	if _, errOut, code := cli(t, d, key, "", "sandbox", "info", id); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("info of a killed sandbox: %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, d, key, "", "sandbox", "create", "--memory", "lots"); code != 2 || errOut == "" {
		t.Fatalf("bad flag: %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, d, "sb_"+strings.Repeat("1", 40), "", "sandbox", "ls"); code == 0 || errOut == "" {
		t.Fatalf("bad key: %d %q", code, errOut)
	}
}
