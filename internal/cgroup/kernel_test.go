//go:build linux

package cgroup

// Tests against the running kernel. They need root and a detected
// hierarchy; each skips (or fails under CI=true) naming what is missing.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const mib = 1 << 20

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func TestKernelCreateAppliesLimits(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{MemoryBytes: 64 * mib, CPUQuota: 0.5, Pids: 32})

	type file struct{ ctl, name, want string }
	var files []file
	switch h.Version() {
	case V1:
		files = []file{
			{"memory", "memory.limit_in_bytes", "67108864"},
			{"memory", "memory.oom_control", "oom_kill_disable 0"}, // first line
			{"pids", "pids.max", "32"},
			{"cpu", "cpu.cfs_period_us", "100000"},
			{"cpu", "cpu.cfs_quota_us", "50000"},
			{"freezer", "freezer.state", "THAWED"},
		}
		if _, err := os.Stat(filepath.Join(c.ctl["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			files = append(files, file{"memory", "memory.memsw.limit_in_bytes", "67108864"})
		} else {
			files = append(files, file{"memory", "memory.swappiness", "0"})
		}
	case V2:
		files = []file{
			{"memory", "memory.max", "67108864"},
			{"memory", "memory.oom.group", "1"},
			{"pids", "pids.max", "32"},
			{"cpu", "cpu.max", "50000 100000"},
		}
		if _, err := os.Stat(filepath.Join(c.ctl["memory"], "memory.swap.max")); err == nil {
			files = append(files, file{"memory", "memory.swap.max", "0"})
		}
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			got, _, _ := strings.Cut(readTrim(t, filepath.Join(c.ctl[f.ctl], f.name)), "\n")
			if got != f.want {
				t.Errorf("%s = %q, want %q", f.name, got, f.want)
			}
		})
	}
}

func TestKernelCreateExistingAndOpen(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{Pids: 8})

	if _, err := h.Create(c.Name(), Limits{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create(existing) error = %v, want fs.ErrExist", err)
	}
	o, err := h.Open(c.Name())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got, want := o.Dirs(), c.Dirs(); !slices.Equal(got, want) {
		t.Errorf("Open dirs = %v, want %v", got, want)
	}
	if _, err := h.Open(testName(t) + "-missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want fs.ErrNotExist", err)
	}
}

// A limit the kernel refuses fails the creation and leaves nothing behind.
func TestKernelCreateFailsClosed(t *testing.T) {
	h := requireHierarchy(t)
	name := testName(t)
	// pids.max accepts at most PID_MAX_LIMIT (4194304).
	_, err := h.Create(name, Limits{MemoryBytes: 64 * mib, Pids: 1 << 40})
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Create error = %v, want EINVAL", err)
	}
	if !strings.Contains(err.Error(), "pids.max") {
		t.Errorf("error %q does not name pids.max", err)
	}
	for _, d := range h.newCgroup(name).dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind (stat error %v)", d, err)
		}
	}
}

func TestKernelAddProcProcsKill(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{Pids: 16})
	ch := startChild(t, "/bin/sh", "-c", "read x; sleep 10")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	procs, err := c.Procs()
	if err != nil {
		t.Fatalf("Procs: %v", err)
	}
	if !slices.Contains(procs, ch.pid()) {
		t.Errorf("Procs() = %v, want it to contain %d", procs, ch.pid())
	}
	if h.Version() == V1 {
		for _, d := range c.Dirs() {
			if got := readTrim(t, filepath.Join(d, "cgroup.procs")); got == "" {
				t.Errorf("%s/cgroup.procs is empty", d)
			}
		}
	}
	if err := c.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	werr := ch.wait(t, 5*time.Second)
	if sig, ok := signaled(werr); !ok || sig != syscall.SIGKILL {
		t.Errorf("child exit = %v, want killed by SIGKILL", werr)
	}
}

func TestKernelDestroyRemovesEveryController(t *testing.T) {
	h := requireHierarchy(t)
	c, err := h.Create(testName(t), Limits{MemoryBytes: 32 * mib, CPUQuota: 1, Pids: 8})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	ch := startChild(t, "/bin/sh", "-c", "read x; sleep 30 & sleep 30")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	// A cgroup created below (as a nested runtime might) goes too.
	sub := filepath.Join(c.Dirs()[0], "nested")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatalf("mkdir nested: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, d := range c.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Destroy (stat error %v)", d, err)
		}
	}
	if sig, ok := signaled(ch.wait(t, 5*time.Second)); !ok || sig != syscall.SIGKILL {
		t.Errorf("child not killed by SIGKILL")
	}
	if err := c.Destroy(ctx); err != nil {
		t.Errorf("second Destroy = %v, want nil (idempotent)", err)
	}
}

func TestKernelMemoryLimitOOMKill(t *testing.T) {
	h := requireHierarchy(t, "memory")
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		skipOrFail(t, "needs /usr/bin/python3: %v", err)
	}
	c := createTest(t, h, Limits{MemoryBytes: 64 * mib, Pids: 16})
	ch := startChild(t, "/usr/bin/python3", "-c", "import sys; sys.stdin.readline(); b = bytearray(200 << 20); print('allocated')")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	werr := ch.wait(t, 30*time.Second)
	if sig, ok := signaled(werr); !ok || sig != syscall.SIGKILL {
		t.Errorf("child exit = %v (output %q), want killed by SIGKILL", werr, ch.out)
	}
	s, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("stats after OOM: %+v", s)
	if s.OOMKills < 1 {
		t.Errorf("Stats().OOMKills = %d, want ≥ 1", s.OOMKills)
	}
	if !s.MemoryPeakUnavailable && (s.MemoryPeak < 32*mib || s.MemoryPeak > 64*mib) {
		t.Errorf("Stats().MemoryPeak = %d, want within (32 MiB, 64 MiB]", s.MemoryPeak)
	}
}

func TestKernelPidsLimit(t *testing.T) {
	h := requireHierarchy(t, "pids")
	c := createTest(t, h, Limits{Pids: 4})
	script := `read x; i=0; fail=0
while [ $i -lt 10 ]; do sleep 2 & [ $? -ne 0 ] && fail=1; i=$((i+1)); done
echo done`
	ch := startChild(t, "/bin/sh", "-c", script)
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	_ = ch.wait(t, 10*time.Second) // the shell may fail; the counters tell
	s, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	t.Logf("stats after fork storm: %+v; output %q", s, ch.out)
	if s.PidsLimitHits < 1 {
		t.Errorf("Stats().PidsLimitHits = %d, want ≥ 1 (output %q)", s.PidsLimitHits, ch.out)
	}
	if s.PidsCurrent > 4 {
		t.Errorf("Stats().PidsCurrent = %d, want ≤ 4", s.PidsCurrent)
	}
	if out := ch.out.String(); !strings.Contains(strings.ToLower(out), "fork") {
		t.Errorf("shell output %q does not report a fork failure", out)
	}
}

func TestKernelFreezeThaw(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{})
	ch := startChild(t, "/bin/sh", "-c", "read x; while :; do :; done")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)

	usage := func() time.Duration {
		t.Helper()
		s, err := c.Stats()
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		return s.CPUUsage
	}
	over := func(d time.Duration) time.Duration {
		t.Helper()
		u0 := usage()
		time.Sleep(d)
		return usage() - u0
	}
	if got := over(200 * time.Millisecond); got < 20*time.Millisecond {
		t.Fatalf("busy loop used %v CPU in 200ms before Freeze, want ≥ 20ms", got)
	}
	if err := c.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if got := over(300 * time.Millisecond); got > 5*time.Millisecond {
		t.Errorf("frozen cgroup used %v CPU in 300ms, want ≤ 5ms", got)
	}
	if err := c.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	if got := over(200 * time.Millisecond); got < 20*time.Millisecond {
		t.Errorf("thawed busy loop used %v CPU in 200ms, want ≥ 20ms", got)
	}
}

// Kill reaches a frozen cgroup and processes forking in a loop.
func TestKernelKillForkLoop(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{Pids: 64})
	ch := startChild(t, "/bin/sh", "-c", "read x; while :; do sleep 5 & done")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	procs, err := c.Procs()
	if err != nil {
		t.Fatalf("Procs: %v", err)
	}
	if len(procs) != 0 {
		t.Errorf("Procs() after Drain = %v, want none", procs)
	}
}

func TestKernelReset(t *testing.T) {
	h := requireHierarchy(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		skipOrFail(t, "needs /usr/bin/python3: %v", err)
	}
	c := createTest(t, h, Limits{MemoryBytes: 64 * mib, CPUQuota: 1, Pids: 16})
	ch := startChild(t, "/usr/bin/python3", "-c",
		"import sys; sys.stdin.readline(); b = bytearray(32 << 20); sum(range(3000000))")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	if err := ch.wait(t, 30*time.Second); err != nil {
		t.Fatalf("child: %v (output %q)", err, ch.out)
	}
	before, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if before.CPUUsage < 10*time.Millisecond || (!before.MemoryPeakUnavailable && before.MemoryPeak < 32*mib) {
		t.Fatalf("Stats before Reset = %+v, want CPU ≥ 10ms and peak ≥ 32 MiB", before)
	}

	t.Logf("stats before Reset: %+v", before)
	// Raise the memory limit (v1 must then write memsw first), drop the
	// CPU limit.
	if err := c.Reset(Limits{MemoryBytes: 128 * mib, Pids: 8}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	after, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if after.CPUUsage > time.Millisecond || after.CPUUser > time.Millisecond {
		t.Errorf("CPU after Reset = %v (user %v), want ≈ 0", after.CPUUsage, after.CPUUser)
	}
	if !after.MemoryPeakUnavailable && after.MemoryPeak > 16*mib {
		t.Errorf("MemoryPeak after Reset = %d, want ≤ 16 MiB (the cache left charged)", after.MemoryPeak)
	}
	if h.Version() == V1 {
		for _, f := range []struct{ ctl, name, want string }{
			{"memory", "memory.limit_in_bytes", "134217728"},
			{"pids", "pids.max", "8"},
			{"cpu", "cpu.cfs_quota_us", "-1"},
		} {
			if got := readTrim(t, filepath.Join(c.ctl[f.ctl], f.name)); got != f.want {
				t.Errorf("%s after Reset = %q, want %q", f.name, got, f.want)
			}
		}
	}
	// Lower it again (limit first).
	if err := c.Reset(Limits{MemoryBytes: 48 * mib}); err != nil {
		t.Fatalf("second Reset: %v", err)
	}
}

func TestKernelResetBusy(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{})
	ch := startChild(t, "/bin/sh", "-c", "read x; sleep 10")
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	if err := c.Reset(Limits{}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Reset with a process = %v, want ErrNotEmpty", err)
	}
}

func TestKernelFD(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{})
	fd, err := c.FD()
	switch h.Version() {
	case V1:
		if !errors.Is(err, ErrNotSupported) {
			t.Errorf("FD() on v1 error = %v, want ErrNotSupported", err)
		}
	case V2:
		if err != nil {
			t.Fatalf("FD: %v", err)
		}
		defer syscall.Close(fd)
		ch := startChildInto(t, fd)
		procs, err := c.Procs()
		if err != nil {
			t.Fatalf("Procs: %v", err)
		}
		if !slices.Contains(procs, ch.pid()) {
			t.Errorf("Procs() = %v, want the child started with CgroupFD (%d)", procs, ch.pid())
		}
	}
}

// tenantHelper moves its only thread into the tenant cgroup (fds 3 to
// 3+argv[1]-1) and forks five sleepers there; it reports how many
// started, how many forks failed, whether its thread is in the tenant
// cgroup, whether every sleeper was born there, and in how many
// hierarchies the first one is in it.
const tenantHelper = `
import os, sys
sys.stdin.readline()
for fd in range(3, 3 + int(sys.argv[1])):
    os.write(fd, b"0")
started, failed = [], 0
for i in range(5):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.execv("/bin/sleep", ["sleep", "30"])
    started.append(pid)
mine = open("/proc/thread-self/cgroup").read()
kids = [open("/proc/%d/cgroup" % p).read() for p in started]
print(len(started), failed, "/tenant" in mine, all("/tenant" in k for k in kids), kids[0].count("/tenant"), flush=True)
sys.stdin.readline()
`

func TestKernelTenantCgroup(t *testing.T) {
	h := requireHierarchy(t)
	c := createTest(t, h, Limits{MemoryBytes: 64 * mib, Pids: 16, TenantPids: 3, SupervisorMemory: 16 * mib})
	tenant := filepath.Join(c.ctl["pids"], TenantDir)
	if got := readTrim(t, filepath.Join(tenant, "pids.max")); got != "3" {
		t.Errorf("tenant pids.max = %q, want 3", got)
	}
	// Hierarchies the tenant cgroup is in: on v1 pids and memory, the
	// memory limit split between the tenant and the supervisor; on v2
	// one threaded cgroup, the memory limit the cgroup's alone.
	hierarchies, cgroupMem := 2, 80*mib
	if h.Version() == V2 {
		hierarchies, cgroupMem = 1, 64*mib
		if got := readTrim(t, filepath.Join(tenant, "cgroup.type")); got != "threaded" {
			t.Errorf("tenant cgroup.type = %q, want threaded", got)
		}
		if got := readTrim(t, filepath.Join(c.dirs[0], "memory.max")); got != strconv.Itoa(cgroupMem) {
			t.Errorf("memory.max = %s, want %d", got, cgroupMem)
		}
	} else {
		mem := c.ctl["memory"]
		if got := readTrim(t, filepath.Join(mem, "memory.limit_in_bytes")); got != strconv.Itoa(cgroupMem) {
			t.Errorf("memory.limit_in_bytes = %s, want %d (the tenant's and the supervisor's)", got, cgroupMem)
		}
		if got := readTrim(t, filepath.Join(mem, TenantDir, "memory.limit_in_bytes")); got != strconv.Itoa(64*mib) {
			t.Errorf("tenant memory.limit_in_bytes = %s, want %d", got, 64*mib)
		}
	}
	enter, err := c.TenantFiles(os.Getuid())
	if err != nil {
		t.Fatalf("TenantFiles: %v", err)
	}
	if len(enter) != hierarchies {
		t.Fatalf("TenantFiles gave %d files, want %d", len(enter), hierarchies)
	}
	defer func() {
		for _, f := range enter {
			f.Close()
		}
	}()

	ch := &child{cmd: exec.Command("python3", "-c", tenantHelper, strconv.Itoa(len(enter))), out: new(lockedBuffer), done: make(chan struct{})}
	ch.cmd.Stdout, ch.cmd.Stderr = ch.out, ch.out
	ch.cmd.ExtraFiles = enter
	if ch.stdin, err = ch.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := ch.cmd.Start(); err != nil {
		t.Fatalf("start the helper: %v", err)
	}
	go func() { ch.err = ch.cmd.Wait(); close(ch.done) }()
	t.Cleanup(func() { ch.cmd.Process.Kill(); <-ch.done })
	// The helper lives in the cgroup, as a sandbox's supervisor does.
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(ch.out.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The helper's thread takes one of the tenant's 3 pids.
	if got, want := strings.TrimSpace(ch.out.String()), fmt.Sprintf("2 3 True True %d", hierarchies); got != want {
		t.Fatalf("helper: %q, want %q (2 sleepers born in the tenant cgroup in every hierarchy, 3 forks refused, the thread in it)", got, want)
	}
	if got := readTrim(t, filepath.Join(tenant, "pids.current")); got != "3" {
		t.Errorf("tenant pids.current = %s, want the helper's thread and 2 sleepers", got)
	}
	// Open finds the tenant cgroup again; SetLimits changes its limit.
	c2, err := h.Open(c.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.SetLimits(Limits{MemoryBytes: 48 * mib, Pids: 16, TenantPids: 5, SupervisorMemory: 16 * mib}); err != nil {
		t.Fatalf("SetLimits: %v", err)
	}
	if got := readTrim(t, filepath.Join(tenant, "pids.max")); got != "5" {
		t.Errorf("tenant pids.max after SetLimits = %q, want 5", got)
	}
	if h.Version() == V1 {
		if got := readTrim(t, filepath.Join(c.ctl["memory"], TenantDir, "memory.limit_in_bytes")); got != strconv.Itoa(48*mib) {
			t.Errorf("tenant memory.limit_in_bytes after SetLimits = %s, want %d", got, 48*mib)
		}
	}
}

// A cgroup left in only some controllers (a removal cut short on v1) is
// refused by Open and removed through Leftover, processes included.
func TestKernelLeftoverRemovesPartialCgroup(t *testing.T) {
	h := requireHierarchy(t)
	c, err := h.Create(testName(t), Limits{MemoryBytes: 32 * mib, CPUQuota: 1, Pids: 8})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	ch := startChild(t, "/bin/sh", "-c", "read x; exec sleep 30") // one process throughout
	if err := c.AddProc(ch.pid()); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	ch.release(t)
	dirs := c.Dirs()
	if len(dirs) > 1 {
		// Remove one controller's directory: move the child out of it
		// first (to the same controller's root), as a cut-short removal
		// would have left it.
		gone := dirs[len(dirs)-1]
		if err := os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(gone)), "cgroup.procs"), []byte(strconv.Itoa(ch.pid())), 0); err != nil {
			t.Fatalf("move child out of %s: %v", gone, err)
		}
		if err := os.Remove(gone); err != nil {
			t.Fatalf("remove %s: %v", gone, err)
		}
		if _, err := h.Open(c.Name()); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open of a partial cgroup = %v, want fs.ErrNotExist", err)
		}
	}
	left, err := h.Leftover(c.Name())
	if err != nil {
		t.Fatalf("Leftover: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := left.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists (stat error %v)", d, err)
		}
	}
	if sig, ok := signaled(ch.wait(t, 5*time.Second)); !ok || sig != syscall.SIGKILL {
		t.Errorf("child not killed by SIGKILL")
	}
}
