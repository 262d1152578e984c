package test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostBaseline is what HOST-OK compares against: the daemon's descriptors,
// threads and memory, a canary file and a canary process on the host.
type hostBaseline struct {
	fds, threads int
	rssKiB       int64
	canary       string
	canaryProc   *exec.Cmd
}

// takeBaseline records the daemon's state once it is warm, and plants a
// host canary file and a canary process.
func takeBaseline(t *testing.T, d *daemon) *hostBaseline {
	t.Helper()
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(300 * time.Millisecond)
	b := &hostBaseline{canary: filepath.Join(d.dir, "..", fmt.Sprintf("soulbox-canary-%d", os.Getpid()))}
	if err := os.WriteFile(b.canary, []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(b.canary) })
	b.canaryProc = exec.Command("sleep", "3600")
	if err := b.canaryProc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.canaryProc.Process.Kill(); b.canaryProc.Wait() })
	b.fds, b.threads, b.rssKiB = daemonState(t, d)
	return b
}

func daemonState(t *testing.T, d *daemon) (fds, threads int, rssKiB int64) {
	t.Helper()
	pid := d.cmd.Process.Pid
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, fmt.Sprintf("/proc/%d/status", pid))
	threads, _ = strconv.Atoi(st["Threads"])
	rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(st["VmRSS"], " kB"), 10, 64)
	return len(ents), threads, rssKiB
}

// hostOK is the check after a hostile case: the daemon is healthy and
// back to its baseline of descriptors, with bounded threads and memory;
// nothing of the data directory's sandboxes is left (when none should
// live); the host canary file and process are intact.
func hostOK(t *testing.T, d *daemon, b *hostBaseline, noSandboxes bool) {
	t.Helper()
	if st := d.call("", "GET", "/health", nil, nil); st != 200 {
		t.Fatalf("HOST-OK: daemon health %d", st)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fds, threads, rss := daemonState(t, d)
		// Go keeps the threads it made (they park); bound them, and the
		// memory, rather than requiring the baseline.
		ok := fds <= b.fds && threads <= b.threads+64 && rss <= b.rssKiB+64<<10
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HOST-OK: daemon fds %d (baseline %d), threads %d (%d), RSS %d KiB (%d)", fds, b.fds, threads, b.threads, rss, b.rssKiB)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if noSandboxes {
		hostClean(t, d.dir)
	}
	if got, err := os.ReadFile(b.canary); err != nil || string(got) != "canary" {
		t.Fatalf("HOST-OK: host canary file changed: %q %v", got, err)
	}
	if err := b.canaryProc.Process.Signal(syscallZero); err != nil {
		t.Fatalf("HOST-OK: host canary process: %v", err)
	}
}
