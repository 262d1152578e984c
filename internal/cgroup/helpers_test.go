package cgroup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// skipOrFail skips the test, naming what is missing, except under CI
// (CI=true), where a missing prerequisite is a failure.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireRoot skips (or, under CI, fails) unless running as root.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (euid %d)", os.Geteuid())
	}
}

// requireHierarchy requires root and a usable cgroup hierarchy with the
// given controllers, and returns it.
func requireHierarchy(t testing.TB, controllers ...string) *Hierarchy {
	t.Helper()
	requireRoot(t)
	h, err := Detect()
	if err != nil {
		skipOrFail(t, "needs a usable cgroup hierarchy: %v", err)
	}
	requireController(t, h, controllers...)
	return h
}

// requireController skips (or, under CI, fails) unless h has every
// controller named.
func requireController(t testing.TB, h *Hierarchy, controllers ...string) {
	t.Helper()
	var missing []string
	for _, c := range controllers {
		if !slices.Contains(h.Controllers(), c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "needs cgroup %s controller(s) %s", h.Version(), strings.Join(missing, ", "))
	}
}

// requireVersion skips a test written for one cgroup version on a host
// with the other. The version is a property of the host, not a missing
// prerequisite, so CI=true does not turn this into a failure; set
// SOULBOX_TEST_CGROUP=v1 or v2 (the v2 VM harness does) to make a
// mismatch fail.
func requireVersion(t testing.TB, h *Hierarchy, v Version) {
	t.Helper()
	if h.Version() == v {
		return
	}
	if want := os.Getenv("SOULBOX_TEST_CGROUP"); want != "" {
		t.Fatalf("SOULBOX_TEST_CGROUP=%s but the host has cgroup %s", want, h.Version())
	}
	t.Skipf("needs cgroup %s; host has %s", v, h.Version())
}

// testName returns a cgroup name unique to this test run.
func testName(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	n := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	if len(n) > 40 {
		n = n[:40]
	}
	return "test-" + n + "-" + hex.EncodeToString(b[:])
}

// createTest creates a cgroup destroyed at the end of the test.
func createTest(t testing.TB, h *Hierarchy, l Limits) *Cgroup {
	t.Helper()
	c, err := h.Create(testName(t), l)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Destroy(ctx); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
	})
	return c
}

// child is a process that waits for a line on stdin before running the
// rest of its script, so that it can be put in a cgroup first.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *lockedBuffer
	done  chan struct{}
	err   error
}

// startChild starts argv, which must read one line (or byte) of stdin
// before doing anything that should be accounted to the cgroup.
func startChild(t testing.TB, argv ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(argv[0], argv[1:]...), out: new(lockedBuffer), done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill child: %v", err)
		}
		<-c.done
	})
	return c
}

// lockedBuffer is an output sink safe to read while the child writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// release lets the child continue past its read.
func (c *child) release(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
		t.Fatalf("release child: %v", err)
	}
}

// wait waits up to d for the child to exit and returns its Wait error.
func (c *child) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		t.Fatalf("child %d still running after %v; output: %s", c.pid(), d, c.out)
		return nil
	}
}

// signaled returns the signal that killed the process, if one did.
func signaled(err error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
}
