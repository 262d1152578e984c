package cgroup

// Unit tests of the cgroup v2 logic against a faked cgroupfs (fakefs_test.go).

import (
	"context"
	"errors"
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

func TestV2CreateWrites(t *testing.T) {
	parent := []fakeWrite{
		{"cgroup.subtree_control", "+cpu +memory +pids"},
		{"soulbox/cgroup.subtree_control", "+cpu +memory +pids"},
	}
	tests := []struct {
		name   string
		limits Limits
		want   []fakeWrite
	}{
		{
			name:   "all limits",
			limits: Limits{MemoryBytes: 64 << 20, CPUQuota: 0.5, Pids: 32},
			want: []fakeWrite{
				{"soulbox/sb-1/memory.max", "67108864"},
				{"soulbox/sb-1/memory.swap.max", "0"},
				{"soulbox/sb-1/memory.oom.group", "1"},
				{"soulbox/sb-1/pids.max", "32"},
				{"soulbox/sb-1/cpu.max", "50000 100000"},
			},
		},
		{
			name:   "fractional cores above one",
			limits: Limits{CPUQuota: 1.5},
			want: []fakeWrite{
				{"soulbox/sb-1/memory.swap.max", "0"},
				{"soulbox/sb-1/memory.oom.group", "1"},
				{"soulbox/sb-1/cpu.max", "150000 100000"},
			},
		},
		{
			name:   "no limits still disables swap and sets group OOM",
			limits: Limits{},
			want: []fakeWrite{
				{"soulbox/sb-1/memory.swap.max", "0"},
				{"soulbox/sb-1/memory.oom.group", "1"},
			},
		},
		{
			name:   "one OOM victim (a long-lived sandbox)",
			limits: Limits{OOMOneVictim: true},
			want: []fakeWrite{
				{"soulbox/sb-1/memory.swap.max", "0"},
				{"soulbox/sb-1/memory.oom.group", "0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f := newFakeV2(t)
			if _, err := h.Create("sb-1", tt.limits); err != nil {
				t.Fatalf("Create: %v", err)
			}
			got := f.takeWrites()
			want := append(slices.Clone(parent), tt.want...)
			if !slices.Equal(got, want) {
				t.Errorf("writes:\n got  %v\n want %v", got, want)
			}
			if got, want := strings.TrimSpace(f.get(t, "soulbox/cgroup.subtree_control")), "cpu memory pids"; got != want {
				t.Errorf("soulbox/cgroup.subtree_control = %q, want %q", got, want)
			}
		})
	}
}

// Controllers already enabled up the chain are not written again.
func TestV2CreateSkipsEnabledControllers(t *testing.T) {
	h, f := newFakeV2(t)
	f.put(t, "cgroup.subtree_control", "cpu io memory\n")
	if _, err := h.Create("a", Limits{}); err != nil {
		t.Fatalf("Create a: %v", err)
	}
	got := f.takeWrites()[:2]
	want := []fakeWrite{
		{"cgroup.subtree_control", "+pids"},
		{"soulbox/cgroup.subtree_control", "+cpu +memory +pids"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("first Create parent writes = %v, want %v", got, want)
	}
	if _, err := h.Create("b", Limits{}); err != nil {
		t.Fatalf("Create b: %v", err)
	}
	for _, w := range f.takeWrites() {
		if filepath.Base(w.File) == "cgroup.subtree_control" {
			t.Errorf("second Create wrote %v, want no subtree_control write", w)
		}
	}
}

func TestV2CreateFailedWrite(t *testing.T) {
	tests := []struct {
		file string
		err  error
	}{
		{"soulbox/sb-1/memory.max", syscall.EBUSY},
		{"soulbox/sb-1/memory.swap.max", syscall.EINVAL},
		{"soulbox/sb-1/memory.oom.group", syscall.EACCES},
		{"soulbox/sb-1/pids.max", syscall.EINVAL},
		{"soulbox/sb-1/cpu.max", syscall.EINVAL},
		{"cgroup.subtree_control", syscall.EBUSY},
		{"soulbox/cgroup.subtree_control", syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h, f := newFakeV2(t)
			f.fail[tt.file] = tt.err
			c, err := h.Create("sb-1", Limits{MemoryBytes: 64 << 20, CPUQuota: 2, Pids: 10})
			if err == nil {
				t.Fatalf("Create = %v, nil; want an error", c)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v does not wrap %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), f.abs(tt.file)) {
				t.Errorf("error %q does not name %s", err, f.abs(tt.file))
			}
			if _, serr := os.Stat(f.abs("soulbox/sb-1")); !errors.Is(serr, fs.ErrNotExist) {
				t.Errorf("partially created cgroup left behind (stat: %v)", serr)
			}
		})
	}
}

func TestV2SwapAccountingMissing(t *testing.T) {
	tests := []struct {
		name    string
		swaps   string
		wantErr bool
	}{
		{"no swap active", "Filename\tType\tSize\tUsed\tPriority\n", false},
		{"swap active", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f := newFakeV2(t)
			f.omit["memory.swap.max"] = true
			f.put(t, "swaps", tt.swaps)
			_, err := h.Create("sb-1", Limits{MemoryBytes: 64 << 20})
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Create error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "memory.swap.max") {
				t.Errorf("error %q does not name memory.swap.max", err)
			}
		})
	}
}

func TestV2CreateRejects(t *testing.T) {
	tests := []struct {
		name   string
		cg     string
		limits Limits
		want   error
	}{
		{"empty name", "", Limits{}, ErrInvalidName},
		{"slash", "a/b", Limits{}, ErrInvalidName},
		{"dotdot", "..", Limits{}, ErrInvalidName},
		{"dotdot inside", "a..b", Limits{}, ErrInvalidName},
		{"dot", ".", Limits{}, ErrInvalidName},
		{"interface file name", "cgroup.procs", Limits{}, ErrInvalidName},
		{"v2 interface file name", "memory.max", Limits{}, ErrInvalidName},
		{"v1 interface file name", "cpuacct.usage", Limits{}, ErrInvalidName},
		{"v1 tasks file", "tasks", Limits{}, ErrInvalidName},
		{"newline", "a\nb", Limits{}, ErrInvalidName},
		{"too long", strings.Repeat("a", 256), Limits{}, ErrInvalidName},
		{"negative memory", "x", Limits{MemoryBytes: -1}, ErrInvalidLimits},
		{"negative pids", "x", Limits{Pids: -1}, ErrInvalidLimits},
		{"NaN cpu", "x", Limits{CPUQuota: nan()}, ErrInvalidLimits},
		{"cpu below kernel minimum", "x", Limits{CPUQuota: 0.001}, ErrInvalidLimits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f := newFakeV2(t)
			if _, err := h.Create(tt.cg, tt.limits); !errors.Is(err, tt.want) {
				t.Errorf("Create(%q, %+v) error = %v, want %v", tt.cg, tt.limits, err, tt.want)
			}
			if w := f.takeWrites(); len(w) != 0 {
				t.Errorf("rejected Create wrote %v", w)
			}
		})
	}
}

func TestValidNames(t *testing.T) {
	for _, name := range []string{"sb-1a2b3c", "sb_1", "run.42", "memory", strings.Repeat("a", 255)} {
		if err := validateName(name); err != nil {
			t.Errorf("validateName(%q) = %v, want nil", name, err)
		}
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestV2CreateExisting(t *testing.T) {
	h, _ := newFakeV2(t)
	if _, err := h.Create("sb-1", Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Create("sb-1", Limits{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create error = %v, want fs.ErrExist", err)
	}
}

func TestV2Stats(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "soulbox/sb-1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\n")
	f.put(t, "soulbox/sb-1/memory.current", "4096\n")
	f.put(t, "soulbox/sb-1/memory.peak", "8192\n")
	f.put(t, "soulbox/sb-1/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 3\noom_group_kill 1\n")
	f.put(t, "soulbox/sb-1/pids.current", "2\n")
	f.put(t, "soulbox/sb-1/pids.events", "max 5\n")
	got, err := c.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := Stats{
		CPUUsage: 1500 * time.Microsecond, CPUUser: time.Millisecond, CPUSystem: 500 * time.Microsecond,
		MemoryPeak: 8192, MemoryCurrent: 4096, OOMKills: 3, PidsCurrent: 2, PidsLimitHits: 5,
	}
	if got != want {
		t.Errorf("Stats() =\n %+v, want\n %+v", got, want)
	}

	// Linux < 5.19: no memory.peak.
	if err := os.Remove(f.abs("soulbox/sb-1/memory.peak")); err != nil {
		t.Fatal(err)
	}
	got, err = c.Stats()
	if err != nil {
		t.Fatalf("Stats without memory.peak: %v", err)
	}
	if !got.MemoryPeakUnavailable || got.MemoryPeak != 0 {
		t.Errorf("Stats without memory.peak: MemoryPeak %d, unavailable %v; want 0, true", got.MemoryPeak, got.MemoryPeakUnavailable)
	}

	f.put(t, "soulbox/sb-1/cpu.stat", "usage_usec lots\n")
	if _, err := c.Stats(); err == nil || !strings.Contains(err.Error(), "cpu.stat") {
		t.Errorf("Stats with a malformed cpu.stat = %v, want an error naming cpu.stat", err)
	}
}

func TestV2FreezeThaw(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.takeWrites()
	if err := c.Freeze(); err != nil {
		t.Fatalf("Freeze: %v", err)
	}
	if err := c.Thaw(); err != nil {
		t.Fatalf("Thaw: %v", err)
	}
	want := []fakeWrite{{"soulbox/sb-1/cgroup.freeze", "1"}, {"soulbox/sb-1/cgroup.freeze", "0"}}
	if got := f.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
}

// A cgroup that never reports frozen: Freeze gives up at the deadline and
// thaws.
func TestV2FreezeTimeout(t *testing.T) {
	h, f := newFakeV2(t)
	h.freezeTimeout = 20 * time.Millisecond
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.takeWrites()
	f.stuckFreeze = true
	err = c.Freeze()
	if err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "cgroup.events") {
		t.Errorf("Freeze = %v, want a timeout naming cgroup.events", err)
	}
	want := []fakeWrite{{"soulbox/sb-1/cgroup.freeze", "1"}, {"soulbox/sb-1/cgroup.freeze", "0"}}
	if got := f.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v (freeze, then thaw back)", got, want)
	}
}

func TestV2Kill(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.takeWrites()
	if err := c.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	// The CPU quota is lifted first (see Cgroup.kill).
	want := []fakeWrite{{"soulbox/sb-1/cpu.max", "max"}, {"soulbox/sb-1/cgroup.kill", "1"}}
	if got := f.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
}

// Without cgroup.kill (Linux < 5.14), Kill freezes, signals every
// listed process and thaws.
func TestV2KillWithoutCgroupKill(t *testing.T) {
	h, f := newFakeV2(t)
	f.omit["cgroup.kill"] = true
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// A real process, so that the SIGKILL has a target.
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	f.put(t, "soulbox/sb-1/cgroup.procs", strconv.Itoa(cmd.Process.Pid)+"\n")
	f.takeWrites()

	if err := c.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	want := []fakeWrite{{"soulbox/sb-1/cpu.max", "max"}, {"soulbox/sb-1/cgroup.freeze", "1"}, {"soulbox/sb-1/cgroup.freeze", "0"}}
	if got := f.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	select {
	case err := <-waitErr:
		if sig, ok := signaled(err); !ok || sig != syscall.SIGKILL {
			t.Errorf("process exit = %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("process not killed")
	}
}

func TestV2AddProcAndFD(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.takeWrites()
	if err := c.AddProc(4242); err != nil {
		t.Fatalf("AddProc: %v", err)
	}
	if got, want := f.takeWrites(), []fakeWrite{{"soulbox/sb-1/cgroup.procs", "4242"}}; !slices.Equal(got, want) {
		t.Errorf("writes = %v, want %v", got, want)
	}
	if err := c.AddProc(0); err == nil {
		t.Error("AddProc(0) succeeded, want an error")
	}
	procs, err := c.Procs()
	if err != nil {
		t.Fatalf("Procs: %v", err)
	}
	if want := []int{4242}; !slices.Equal(procs, want) {
		t.Errorf("Procs() = %v, want %v", procs, want)
	}
	fd, err := c.FD()
	if err != nil {
		t.Fatalf("FD: %v", err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat: %v", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("FD() mode %o, want a directory", st.Mode)
	}
}

func TestV2DestroyNestedAndIdempotent(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Mkdir(f.abs("soulbox/sb-1/inner")); err != nil {
		t.Fatal(err)
	}
	f.put(t, "soulbox/sb-1/cgroup.procs", "4242\n")
	f.put(t, "soulbox/sb-1/cgroup.events", "populated 1\nfrozen 0\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(f.abs("soulbox/sb-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("soulbox/sb-1 still there (stat: %v)", err)
	}
	if _, err := os.Stat(f.abs("soulbox")); err != nil {
		t.Errorf("parent soulbox removed: %v", err)
	}
	if err := c.Destroy(ctx); err != nil {
		t.Errorf("second Destroy = %v, want nil", err)
	}
}

// Destroy of a cgroup that does not empty gives up when ctx ends.
func TestV2DestroyBoundedByContext(t *testing.T) {
	h, f := newFakeV2(t)
	f.ignoreKill = true
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "soulbox/sb-1/cgroup.events", "populated 1\nfrozen 0\n") // never empties
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Destroy(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Destroy = %v, want context.DeadlineExceeded", err)
	}
}

func TestV2Reset(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{MemoryBytes: 64 << 20, CPUQuota: 1, Pids: 10})
	if err != nil {
		t.Fatal(err)
	}
	// A previous run left counters behind.
	f.put(t, "soulbox/sb-1/cpu.stat", "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n")
	f.put(t, "soulbox/sb-1/memory.peak", "50000000\n")
	f.put(t, "soulbox/sb-1/memory.current", "100000\n")
	f.put(t, "soulbox/sb-1/memory.events", "oom_kill 2\noom_group_kill 1\n")
	f.put(t, "soulbox/sb-1/pids.events", "max 4\n")
	f.takeWrites()

	if err := c.Reset(Limits{Pids: 20}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	want := []fakeWrite{
		{"soulbox/sb-1/cgroup.freeze", "0"},
		{"soulbox/sb-1/memory.max", "max"},
		{"soulbox/sb-1/memory.swap.max", "0"},
		{"soulbox/sb-1/memory.oom.group", "1"},
		{"soulbox/sb-1/pids.max", "20"},
		{"soulbox/sb-1/cpu.max", "max 100000"},
	}
	if got := f.takeWrites(); !slices.Equal(got, want) {
		t.Errorf("writes:\n got  %v\n want %v", got, want)
	}
	got, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{MemoryPeak: 100000, MemoryCurrent: 100000}); got != want {
		t.Errorf("Stats() after Reset = %+v, want %+v", got, want)
	}

	// The next run: counters move on from the baseline.
	f.put(t, "soulbox/sb-1/cpu.stat", "usage_usec 7000\nuser_usec 4000\nsystem_usec 3000\n")
	f.put(t, "soulbox/sb-1/memory.events", "oom_kill 3\noom_group_kill 2\n")
	f.peaks["soulbox/sb-1/memory.peak"].bump(300000)
	got, err = c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want2 := Stats{CPUUsage: 2 * time.Millisecond, CPUUser: time.Millisecond, CPUSystem: time.Millisecond,
		MemoryPeak: 300000, MemoryCurrent: 100000, OOMKills: 1}
	if got != want2 {
		t.Errorf("Stats() on the next run = %+v, want %+v", got, want2)
	}

	f.put(t, "soulbox/sb-1/cgroup.procs", "4242\n")
	if err := c.Reset(Limits{}); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Reset of a populated cgroup = %v, want ErrNotEmpty", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// Where memory.peak cannot be reset, Reset succeeds and Stats says the
// peak is unavailable rather than report one from an earlier run.
func TestV2ResetPeakNotResettable(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeFS)
	}{
		{"no memory.peak (< 5.19)", func(f *fakeFS) { f.omit["memory.peak"] = true }},
		{"memory.peak without write handler (5.19-6.11)", func(f *fakeFS) { f.peakNoWrite = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f := newFakeV2(t)
			tt.setup(f)
			c, err := h.Create("sb-1", Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Reset(Limits{}); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			s, err := c.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if !s.MemoryPeakUnavailable || s.MemoryPeak != 0 {
				t.Errorf("MemoryPeak %d, unavailable %v; want 0, true", s.MemoryPeak, s.MemoryPeakUnavailable)
			}
		})
	}
}

func TestV2Open(t *testing.T) {
	h, _ := newFakeV2(t)
	if _, err := h.Open("nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	c, err := h.Create("sb-1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := h.Open("sb-1")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got, want := o.Dirs(), c.Dirs(); !slices.Equal(got, want) {
		t.Errorf("Open dirs = %v, want %v", got, want)
	}
}

func TestNewV2MissingControllers(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset io memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := newV2(osFS{}, root)
	if err == nil || !strings.Contains(err.Error(), "cpu, pids") {
		t.Errorf("newV2 = %v, want an error naming cpu, pids", err)
	}
}

// A tenant cgroup on v2 is a threaded child with its own pids controller;
// its cgroup.procs cannot be read (EOPNOTSUPP: the domain above lists its
// processes), so Procs skips it.
func TestV2TenantCgroup(t *testing.T) {
	h, f := newFakeV2(t)
	c, err := h.Create("sb-1", Limits{Pids: 80, TenantPids: 17})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	writes := f.takeWrites()
	for _, w := range []fakeWrite{
		{"soulbox/sb-1/pids.max", "80"},
		{"soulbox/sb-1/tenant/cgroup.type", "threaded"},
		{"soulbox/sb-1/cgroup.subtree_control", "+pids"},
		{"soulbox/sb-1/tenant/pids.max", "17"},
	} {
		if !slices.Contains(writes, w) {
			t.Errorf("writes %v lack %v", writes, w)
		}
	}
	f.put(t, "soulbox/sb-1/cgroup.procs", "42\n43\n")
	f.readFail = map[string]error{"soulbox/sb-1/tenant/cgroup.procs": syscall.EOPNOTSUPP}
	procs, err := c.Procs()
	if err != nil || !slices.Equal(procs, []int{42, 43}) {
		t.Errorf("Procs() = %v, %v; want [42 43]", procs, err)
	}
	// Another cgroup's unreadable cgroup.procs is still an error.
	f.readFail = map[string]error{"soulbox/sb-1/cgroup.procs": syscall.EOPNOTSUPP}
	if _, err := c.Procs(); err == nil {
		t.Error("Procs() with the sandbox's cgroup.procs unreadable: no error")
	}
}
