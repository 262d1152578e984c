package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// sdkDaemon starts a daemon on a fresh data directory and returns it with
// a Go SDK client holding an API key for it.
func sdkDaemon(t *testing.T, extra ...string) (*daemon, *soulbox.Client) {
	t.Helper()
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, extra...)
	return d, sdkClient(t, d, key)
}

func sdkClient(t *testing.T, d *daemon, key string) *soulbox.Client {
	t.Helper()
	c, err := soulbox.NewClient(soulbox.WithURL(d.url), soulbox.WithAPIKey(key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSDKEndToEnd drives a real daemon through the Go SDK: commands with
// streamed output, stdin and signals, a PTY, file watching, a 100 MB
// round trip, signed URLs, pause and resume, kill.
func TestSDKEndToEnd(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	c := sdkClient(t, d, key)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	sbx, err := c.Create(ctx, soulbox.CreateOptions{
		Timeout:  5 * time.Minute,
		Metadata: map[string]string{"suite": "sdk"},
		Env:      map[string]string{"FROM_CREATE": "yes"},
		Limits:   soulbox.Limits{MemoryMB: 512, DiskSizeMB: 1024},
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("metrics count the sandbox's files in its page cache", func(t *testing.T) {
		if _, err := sbx.Commands.Run(ctx, "head -c 8388608 /dev/urandom > /tmp/cached"); err != nil {
			t.Fatal(err)
		}
		ms, err := c.Metrics(ctx, sbx.ID)
		if err != nil || len(ms) != 1 || ms[0].MemCache < 8<<20 || ms[0].MemUsed < ms[0].MemCache {
			t.Fatalf("metrics %+v, %v: want memCache at least the 8 MiB file, within memUsed", ms, err)
		}
		sbx.Commands.Run(ctx, "rm /tmp/cached")
	})

	t.Run("output streams while the command runs", func(t *testing.T) {
		var mu sync.Mutex
		var firstAt time.Time
		res, err := sbx.Commands.Run(ctx, "echo start; sleep 1; echo end $FROM_CREATE",
			soulbox.WithOnStdout(func([]byte) {
				mu.Lock()
				if firstAt.IsZero() {
					firstAt = time.Now()
				}
				mu.Unlock()
			}))
		if err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		if res.Stdout != "start\nend yes\n" {
			t.Fatalf("stdout %q", res.Stdout)
		}
		if gap := end.Sub(firstAt); gap < 700*time.Millisecond {
			t.Fatalf("first output came only %v before the end: not streamed", gap)
		}
	})

	t.Run("exit code, stdin, signals", func(t *testing.T) {
		_, err := sbx.Commands.Run(ctx, "echo oops >&2; exit 7")
		var exit *soulbox.CommandExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 7 {
			t.Fatalf("exit 7: %v", err)
		}
		h, err := sbx.Commands.Start(ctx, "wc -c", soulbox.WithStdin())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.SendStdin(ctx, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := h.CloseStdin(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := h.Wait(ctx)
		if err != nil || strings.TrimSpace(res.Stdout) != "5" {
			t.Fatalf("wc -c of stdin: %+v %v", res, err)
		}
		sleeper, err := sbx.Commands.Start(ctx, "trap 'echo got TERM; exit 42' TERM; while :; do sleep 0.1; done")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := sleeper.Signal(ctx, soulbox.SIGTERM); err != nil {
			t.Fatal(err)
		}
		res, err = sleeper.Wait(ctx)
		if !errors.As(err, &exit) || exit.ExitCode() != 42 || !strings.Contains(res.Stdout, "got TERM") {
			t.Fatalf("SIGTERM: %+v %v", res, err)
		}
		killed, err := sbx.Commands.Start(ctx, "sleep 100")
		if err != nil {
			t.Fatal(err)
		}
		if err := killed.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := killed.Wait(ctx); err == nil {
			t.Fatal("killed command reported success")
		}
	})

	t.Run("pty", func(t *testing.T) {
		var mu sync.Mutex
		var out bytes.Buffer
		term, err := sbx.PTY.Create(ctx, soulbox.PTYOptions{Cols: 80, Rows: 24, OnData: func(b []byte) {
			mu.Lock()
			out.Write(b)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		seen := func(s string) bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(out.String(), s) }
		waitUntil := func(what string) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for !seen(what) {
				if time.Now().After(deadline) {
					mu.Lock()
					t.Fatalf("terminal never showed %q: %q", what, out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		term.SendInput(ctx, []byte("tty | sed 's/^/TTY=/'; stty size | sed 's/^/SIZE=/'\n"))
		waitUntil("TTY=/dev/pts/")
		waitUntil("SIZE=24 80")
		if err := term.Resize(ctx, 100, 30); err != nil {
			t.Fatal(err)
		}
		term.SendInput(ctx, []byte("stty size | sed 's/^/SIZE=/'\n"))
		waitUntil("SIZE=30 100")
		term.SendInput(ctx, []byte("exit 3\n"))
		res, err := term.Wait(ctx)
		var exit *soulbox.CommandExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("shell exit: %+v %v", res, err)
		}
	})

	t.Run("watch", func(t *testing.T) {
		if _, err := sbx.Files.MakeDir(ctx, "/home/user/w"); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		w, err := sbx.Files.Watch(wctx, "/home/user/w", true)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if _, err := sbx.Commands.Run(ctx, "cd ~/w && echo a > f && echo b >> f && mv f g && rm g"); err != nil {
			t.Fatal(err)
		}
		want := map[soulbox.EventType]bool{soulbox.EventCreate: false, soulbox.EventWrite: false, soulbox.EventRename: false, soulbox.EventRemove: false}
		missing := func() bool {
			for _, ok := range want {
				if !ok {
					return true
				}
			}
			return false
		}
		for missing() {
			ev, err := w.Next(wctx)
			if err != nil {
				t.Fatalf("watch ended before all events: %v (seen %v)", err, want)
			}
			if _, ok := want[ev.Type]; ok {
				want[ev.Type] = true
			}
		}
	})

	t.Run("100 MB round trip", func(t *testing.T) { // 20 MB with -short
		size := int64(100 << 20)
		if testing.Short() {
			size = 20 << 20 // the emulated cgroup v2 guest has little memory and time
		}
		src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
		up := sha256.New()
		if err := sbx.Files.Write(ctx, "/home/user/big.bin", io.TeeReader(src, up)); err != nil {
			t.Fatal(err)
		}
		want := hex.EncodeToString(up.Sum(nil))
		res, err := sbx.Commands.Run(ctx, "sha256sum ~/big.bin")
		if err != nil || !strings.HasPrefix(res.Stdout, want) {
			t.Fatalf("inside: %q %v, want %s", res.Stdout, err, want)
		}
		down := sha256.New()
		if err := sbx.Files.Read(ctx, "/home/user/big.bin", down); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(down.Sum(nil)); got != want {
			t.Fatalf("downloaded %s, uploaded %s", got, want)
		}
		if err := sbx.Files.Remove(ctx, "/home/user/big.bin"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("signed URLs", func(t *testing.T) {
		up := sbx.UploadURL("/home/user/signed.txt", soulbox.URLOptions{Expires: time.Minute})
		resp, err := http.Post(up, "application/octet-stream", strings.NewReader("via signed url"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("signed upload: %d", resp.StatusCode)
		}
		get := func(u string) (int, string) {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if st, body := get(sbx.DownloadURL("/home/user/signed.txt", soulbox.URLOptions{Expires: time.Minute})); st != 200 || body != "via signed url" {
			t.Fatalf("signed download: %d %q", st, body)
		}
		expiring := sbx.DownloadURL("/home/user/signed.txt", soulbox.URLOptions{Expires: time.Second})
		time.Sleep(2100 * time.Millisecond)
		if st, _ := get(expiring); st != 401 {
			t.Fatalf("expired signed URL: %d, want 401", st)
		}
		other := strings.Replace(sbx.DownloadURL("/home/user/signed.txt", soulbox.URLOptions{}), "signed.txt", "other.txt", 1)
		if st, _ := get(other); st != 401 {
			t.Fatalf("signed URL for another path: %d, want 401", st)
		}
	})

	t.Run("file API paths stay inside the sandbox", func(t *testing.T) {
		// The host has /etc/shadow and this canary; the sandbox has neither.
		canary := filepath.Join(dir, "host-canary")
		if err := os.WriteFile(canary, []byte("host secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := sbx.Commands.Run(ctx, "ln -s "+canary+" ~/abs; ln -s ../../.."+canary+" ~/rel; ln -s /proc/1/root/etc/shadow ~/viaproc; mkfifo ~/fifo"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/home/user/abs", "/home/user/rel", "/home/user/viaproc", "/etc/shadow", "/proc/1/root/etc/shadow", "/home/user/../../.." + canary, canary} {
			if b, err := sbx.Files.ReadFile(ctx, p); !errors.Is(err, soulbox.ErrNotFound) && !errors.Is(err, soulbox.ErrAuth) {
				t.Errorf("read %s: %q, %v; want not found", p, b, err)
			}
		}
		for _, p := range []string{"/home/user/fifo", "/dev/zero"} {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := sbx.Files.ReadFile(rctx, p)
			rcancel()
			if !errors.Is(err, soulbox.ErrInvalid) {
				t.Errorf("read %s: %v; want refused", p, err)
			}
		}
		// Writes through a link land inside the sandbox, never on the host.
		if err := sbx.Files.WriteFile(ctx, "/home/user/abs", []byte("x")); err != nil {
			t.Logf("write through a dangling link: %v", err)
		}
		if b, _ := os.ReadFile(canary); string(b) != "host secret" {
			t.Fatalf("host canary changed: %q", b)
		}
		// The sandbox's /etc/passwd is its own.
		hostPasswd, _ := os.ReadFile("/etc/passwd")
		if b, err := sbx.Files.ReadFile(ctx, "/etc/passwd"); err != nil || bytes.Equal(b, hostPasswd) {
			t.Fatalf("/etc/passwd: %v (same as the host's: %v)", err, bytes.Equal(b, hostPasswd))
		}
	})

	t.Run("pause, resume, kill", func(t *testing.T) {
		if err := sbx.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := sbx.Pause(ctx); !errors.Is(err, soulbox.ErrConflict) {
			t.Fatalf("second pause: %v", err)
		}
		info, err := sbx.Info(ctx)
		if err != nil || info.State != soulbox.StatePaused {
			t.Fatalf("info while paused: %+v %v", info, err)
		}
		again, err := c.Connect(ctx, sbx.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := again.Commands.Run(ctx, "echo back"); err != nil || res.Stdout != "back\n" {
			t.Fatalf("after resume: %+v %v", res, err)
		}
		if err := sbx.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, sbx.ID); !errors.Is(err, soulbox.ErrNotFound) {
			t.Fatalf("get after kill: %v", err)
		}
		if _, err := c.Connect(ctx, "doesnotexist"); !errors.Is(err, soulbox.ErrNotFound) {
			t.Fatalf("connect to unknown: %v", err)
		}
		bad, _ := soulbox.NewClient(soulbox.WithURL(d.url), soulbox.WithAPIKey("sb_"+strings.Repeat("0", 40)))
		if _, err := bad.Create(ctx, soulbox.CreateOptions{}); !errors.Is(err, soulbox.ErrAuth) {
			t.Fatalf("bad key: %v", err)
		}
	})
}
