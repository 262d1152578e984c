package cgroup

// Unit tests of the cgroup v1 logic against a faked cgroupfs.

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// v1Files are the interface files of a v1 cgroup, faked as one set in
// every controller directory.
var v1Files = map[string]string{
	"cgroup.procs":                    "",
	"freezer.state":                   "THAWED\n",
	"memory.limit_in_bytes":           "9223372036854771712\n",
	"memory.memsw.limit_in_bytes":     "9223372036854771712\n",
	"memory.max_usage_in_bytes":       "0\n",
	"memory.memsw.max_usage_in_bytes": "0\n",
	"memory.usage_in_bytes":           "0\n",
	"memory.swappiness":               "60\n",
	"memory.oom_control":              "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
	"cpu.cfs_period_us":               "100000\n",
	"cpu.cfs_quota_us":                "-1\n",
	"cpuacct.usage":                   "0\n",
	"cpuacct.usage_user":              "0\n",
	"cpuacct.usage_sys":               "0\n",
	"cpuacct.stat":                    "user 0\nsystem 0\n",
	"pids.max":                        "max\n",
	"pids.current":                    "0\n",
	"pids.events":                     "max 0\n",
}

// newFakeV1 fakes a v1 set-up with cpu and cpuacct co-mounted.
func newFakeV1(t *testing.T, omit ...string) (*Hierarchy, *fakeFS) {
	t.Helper()
	f := &fakeFS{root: t.TempDir(), fail: map[string]error{}, omit: map[string]bool{}, peaks: map[string]*fakePeak{}, files: v1Files}
	for _, o := range omit {
		f.omit[o] = true
	}
	mounts := map[string]string{}
	for ctl, dir := range map[string]string{"freezer": "freezer", "memory": "memory", "cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct", "pids": "pids"} {
		if err := os.MkdirAll(f.abs(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		mounts[ctl] = f.abs(dir)
	}
	h, err := newV1(f, mounts)
	if err != nil {
		t.Fatal(err)
	}
	return h, f
}

func TestV1CreateWrites(t *testing.T) {
	tests := []struct {
		name   string
		omit   []string
		limits Limits
		want   []fakeWrite
	}{
		{
			name:   "swap accounting",
			limits: Limits{MemoryBytes: 64 << 20, CPUQuota: 0.25, Pids: 10},
			want: []fakeWrite{
				{"memory/soulbox/sb/memory.limit_in_bytes", "67108864"},
				{"memory/soulbox/sb/memory.memsw.limit_in_bytes", "67108864"},
				{"memory/soulbox/sb/memory.oom_control", "0"},
				{"pids/soulbox/sb/pids.max", "10"},
				{"cpu,cpuacct/soulbox/sb/cpu.cfs_period_us", "100000"},
				{"cpu,cpuacct/soulbox/sb/cpu.cfs_quota_us", "25000"},
			},
		},
		{
			name:   "no swap accounting",
			omit:   []string{"memory.memsw.limit_in_bytes"},
			limits: Limits{MemoryBytes: 64 << 20},
			want: []fakeWrite{
				{"memory/soulbox/sb/memory.limit_in_bytes", "67108864"},
				{"memory/soulbox/sb/memory.swappiness", "0"},
				{"memory/soulbox/sb/memory.oom_control", "0"},
			},
		},
		{
			name:   "no limits",
			limits: Limits{},
			want:   []fakeWrite{{"memory/soulbox/sb/memory.oom_control", "0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f := newFakeV1(t, tt.omit...)
			c, err := h.Create("sb", tt.limits)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got := f.takeWrites(); !slices.Equal(got, tt.want) {
				t.Errorf("writes:\n got  %v\n want %v", got, tt.want)
			}
			if got, want := len(c.Dirs()), 4; got != want {
				t.Errorf("%d dirs (%v), want %d (cpu and cpuacct share one)", got, c.Dirs(), want)
			}
		})
	}
}

// memsw must stay ≥ the limit at every step: raise memsw first, lower it
// last.
func TestV1ResetMemswOrder(t *testing.T) {
	h, f := newFakeV1(t)
	c, err := h.Create("sb", Limits{MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		bytes int64
		want  []string
	}{
		{"raise", 128 << 20, []string{"memory.memsw.limit_in_bytes=134217728", "memory.limit_in_bytes=134217728"}},
		{"lower", 32 << 20, []string{"memory.limit_in_bytes=33554432", "memory.memsw.limit_in_bytes=33554432"}},
		{"unlimited", 0, []string{"memory.memsw.limit_in_bytes=-1", "memory.limit_in_bytes=-1"}},
		{"limited again", 16 << 20, []string{"memory.limit_in_bytes=16777216", "memory.memsw.limit_in_bytes=16777216"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.takeWrites()
			if err := c.Reset(Limits{MemoryBytes: tt.bytes}); err != nil {
				t.Fatalf("Reset: %v", err)
			}
			var got []string
			for _, w := range f.takeWrites() {
				if strings.Contains(w.File, "limit_in_bytes") {
					got = append(got, w.File[strings.LastIndex(w.File, "/")+1:]+"="+w.Value)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("memory writes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestV1MemoryLimitBusy(t *testing.T) {
	h, f := newFakeV1(t)
	f.fail["memory/soulbox/sb/memory.limit_in_bytes"] = syscall.EBUSY
	_, err := h.Create("sb", Limits{MemoryBytes: 1 << 20})
	if err == nil {
		t.Fatal("Create succeeded, want EBUSY")
	}
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "memory.limit_in_bytes") || !strings.Contains(err.Error(), "above the new limit") {
		t.Errorf("error = %v, want EBUSY naming memory.limit_in_bytes with a hint", err)
	}
	for _, d := range h.newCgroup("sb").dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
}

func TestV1StatsAndReset(t *testing.T) {
	h, f := newFakeV1(t)
	c, err := h.Create("sb", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.usage", "3000000\n")
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.usage_user", "2000000\n")
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.usage_sys", "1000000\n")
	f.put(t, "memory/soulbox/sb/memory.max_usage_in_bytes", "8192\n")
	f.put(t, "memory/soulbox/sb/memory.usage_in_bytes", "4096\n")
	f.put(t, "memory/soulbox/sb/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	f.put(t, "pids/soulbox/sb/pids.events", "max 3\n")
	f.put(t, "pids/soulbox/sb/pids.current", "1\n")
	got, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUsage: 3 * time.Millisecond, CPUUser: 2 * time.Millisecond, CPUSystem: time.Millisecond,
		MemoryPeak: 8192, MemoryCurrent: 4096, OOMKills: 2, PidsCurrent: 1, PidsLimitHits: 3}
	if got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	f.put(t, "pids/soulbox/sb/pids.current", "0\n")
	f.takeWrites()
	if err := c.Reset(Limits{}); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var resets []fakeWrite
	for _, w := range f.takeWrites() {
		if strings.Contains(w.File, "usage") {
			resets = append(resets, w)
		}
	}
	wantResets := []fakeWrite{
		{"memory/soulbox/sb/memory.max_usage_in_bytes", "0"},
		{"memory/soulbox/sb/memory.memsw.max_usage_in_bytes", "0"},
		{"cpu,cpuacct/soulbox/sb/cpuacct.usage", "0"},
	}
	if !slices.Equal(resets, wantResets) {
		t.Errorf("counter resets = %v, want %v", resets, wantResets)
	}
	got, err = c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Reset by the kernel: CPU to 0, peak to current usage; baselined:
	// OOM kills and pids.max hits.
	want = Stats{CPUUsage: 0, MemoryPeak: 4096, MemoryCurrent: 4096}
	if got != want {
		t.Errorf("Stats() after Reset = %+v, want %+v", got, want)
	}
	// RunStats: the same baselines, only CPU, peak and OOM kills.
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.usage", "5000000\n")
	f.put(t, "memory/soulbox/sb/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	got, err = c.RunStats()
	if err != nil {
		t.Fatal(err)
	}
	if want := (Stats{CPUUsage: 5 * time.Millisecond, MemoryPeak: 4096, OOMKills: 1}); got != want {
		t.Errorf("RunStats() = %+v, want %+v", got, want)
	}
}

// Without cpuacct.usage_user, user/system come from cpuacct.stat in
// USER_HZ ticks, and are baselined by Reset.
func TestV1CPUAcctStat(t *testing.T) {
	h, f := newFakeV1(t, "cpuacct.usage_user", "cpuacct.usage_sys")
	c, err := h.Create("sb", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.stat", "user 25\nsystem 5\n")
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUser != 250*time.Millisecond || s.CPUSystem != 50*time.Millisecond {
		t.Errorf("user %v system %v, want 250ms 50ms", s.CPUUser, s.CPUSystem)
	}
	if err := c.Reset(Limits{}); err != nil {
		t.Fatal(err)
	}
	f.put(t, "cpu,cpuacct/soulbox/sb/cpuacct.stat", "user 30\nsystem 5\n")
	if s, err = c.Stats(); err != nil {
		t.Fatal(err)
	}
	if s.CPUUser != 50*time.Millisecond || s.CPUSystem != 0 {
		t.Errorf("after Reset: user %v system %v, want 50ms 0s", s.CPUUser, s.CPUSystem)
	}
}

func TestV1FreezeTimeoutThaws(t *testing.T) {
	h, f := newFakeV1(t)
	h.freezeTimeout = 20 * time.Millisecond
	c, err := h.Create("sb", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	f.stuckFreeze = true
	err = c.Freeze()
	if err == nil || !strings.Contains(err.Error(), "FREEZING") {
		t.Errorf("Freeze = %v, want a still-FREEZING error", err)
	}
	if got := strings.TrimSpace(f.get(t, "freezer/soulbox/sb/freezer.state")); got != "THAWED" {
		t.Errorf("freezer.state after failed Freeze = %q, want THAWED", got)
	}
}

func TestV1FDNotSupported(t *testing.T) {
	h, _ := newFakeV1(t)
	c, err := h.Create("sb", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.FD(); !errors.Is(err, ErrNotSupported) {
		t.Errorf("FD() error = %v, want ErrNotSupported", err)
	}
}
