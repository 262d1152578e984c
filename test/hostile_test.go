package test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHostilePrograms runs programs that attack the sandbox's limits and
// checks each verdict, then that nothing is left on the host.
func TestHostilePrograms(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	cases := []struct {
		name  string
		flags []string
		cmd   []string
		want  []string // acceptable statuses
		// maxWall bounds the whole run generously (slow emulated guests
		// run this too): it catches a run that waits for a sleeping
		// grandchild or ignores its limit, not slowness.
		maxWall time.Duration
		check   func(t *testing.T, r runResult)
	}{
		{
			name:  "fork bomb",
			flags: []string{"--pids", "64", "--timeout", "2s"},
			cmd:   []string{"bash", "-c", "f(){ f|f & }; f; sleep 5"},
			want:  []string{"TLE", "RE", "OK"}, maxWall: 20 * time.Second,
		},
		{
			name:  "memory bomb",
			flags: []string{"--memory", "64M"},
			cmd:   []string{"python3", "-c", "x=[]\nwhile True: x.append(bytearray(1<<20))"},
			want:  []string{"MLE"},
			check: func(t *testing.T, r runResult) {
				if r.PeakMemoryBytes < 48<<20 || r.PeakMemoryBytes > 80<<20 {
					t.Errorf("peak memory %d, want close to the 64M limit", r.PeakMemoryBytes)
				}
			},
		},
		{
			name:  "busy loop",
			flags: []string{"--cpu-time", "1s", "--timeout", "10s"},
			cmd:   []string{"sh", "-c", "while :; do :; done"},
			want:  []string{"TLE"}, maxWall: 20 * time.Second,
			check: func(t *testing.T, r runResult) {
				if r.CPUMS < 900 {
					t.Errorf("cpu_ms %v: a CPU-time TLE must have used the CPU time", r.CPUMS)
				}
			},
		},
		{
			name:  "sleeper",
			flags: []string{"--timeout", "1s"},
			cmd:   []string{"sleep", "60"},
			want:  []string{"TLE"}, maxWall: 20 * time.Second,
			check: func(t *testing.T, r runResult) {
				if r.CPUMS > 500 {
					t.Errorf("cpu_ms %v for a sleeping program", r.CPUMS)
				}
			},
		},
		{
			name:  "output flood",
			flags: []string{"--output-limit", "1M"},
			cmd:   []string{"sh", "-c", "head -c 4G /dev/zero"},
			want:  []string{"OLE"}, maxWall: 60 * time.Second,
			check: func(t *testing.T, r runResult) {
				if len(r.Stdout) != 1<<20 || !r.StdoutTruncated {
					t.Errorf("stdout %d bytes truncated=%v, want exactly 1M and truncated", len(r.Stdout), r.StdoutTruncated)
				}
			},
		},
		{
			name:  "disk fill",
			flags: []string{"--disk", "32M"},
			cmd:   []string{"sh", "-c", "dd if=/dev/zero of=big bs=1M count=100 2>&1"},
			want:  []string{"FSE"},
			check: func(t *testing.T, r runResult) {
				if !strings.Contains(r.Stdout, "No space left") {
					t.Errorf("want ENOSPC inside, got %q", r.Stdout)
				}
			},
		},
		{
			name:  "file size",
			flags: []string{"--file-size", "1M"},
			cmd:   []string{"dd", "if=/dev/zero", "of=big", "bs=1M", "count=4"},
			want:  []string{"FSE"},
		},
		{
			name:  "fd exhaustion",
			flags: []string{"--open-files", "64"},
			cmd:   []string{"python3", "-c", "import os\nfs=[]\ntry:\n  while True: fs.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e: print(e.errno, len(fs) < 64)"},
			want:  []string{"OK"},
			check: func(t *testing.T, r runResult) {
				if r.Stdout != "24 True\n" {
					t.Errorf("want EMFILE (24) below the limit, got %q", r.Stdout)
				}
			},
		},
		{
			name:  "daemonised grandchild holding stdout",
			flags: []string{"--timeout", "20s"},
			cmd:   []string{"sh", "-c", "(setsid sleep 1000 &); echo parent done"},
			want:  []string{"OK"}, maxWall: 20 * time.Second,
		},
		{
			name:  "ignores SIGTERM",
			flags: []string{"--timeout", "1s"},
			cmd:   []string{"sh", "-c", "trap '' TERM INT HUP; while :; do sleep 1; done"},
			want:  []string{"TLE"}, maxWall: 20 * time.Second,
		},
		{
			name:  "x32 syscall",
			flags: nil,
			cmd:   []string{"python3", "-c", "import ctypes; ctypes.CDLL(None).syscall(0x40000000 | 39)"},
			want:  []string{"SV"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := soulboxRun(t, dir, tc.flags, tc.cmd...)
			took := time.Since(start)
			ok := false
			for _, w := range tc.want {
				ok = ok || r.Status == w
			}
			if !ok {
				t.Errorf("status %s (exit %d, signal %v), want one of %v; stderr %q", r.Status, r.ExitCode, r.Signal, tc.want, trim(r.Stderr))
			}
			if tc.maxWall > 0 && took > tc.maxWall {
				t.Errorf("took %v, want under %v", took, tc.maxWall)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			hostClean(t, dir)
		})
	}
}

// TestRunnerMemoryBounded checks that the runner does not buffer more
// than the output limit when a program floods its output.
func TestRunnerMemoryBounded(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	// Measured through the probe: the runner's own high-water mark, not
	// this (large) test process's, which the kernel would pass on at exec.
	cmd := exec.Command(probeBin, "rusage", soulboxBin, "run", "--json", "--data-dir", dir, "--output-limit", "4M", "--", "sh", "-c", "head -c 2G /dev/zero & head -c 2G /dev/zero >&2; wait")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var maxRSS int64
	if _, err := fmt.Sscanf(stderr.String()[strings.LastIndex(stderr.String(), "maxrss="):], "maxrss=%d", &maxRSS); err != nil || maxRSS <= 0 {
		t.Fatalf("no maxrss in %q", stderr.String())
	}
	t.Logf("runner max RSS %d KiB", maxRSS>>10)
	if maxRSS > 64<<20 {
		t.Errorf("runner max RSS %d bytes, want under 64M with a 4M output limit", maxRSS)
	}
	hostClean(t, dir)
}

// TestManyRuns runs 1,000 sandboxes in a row and checks nothing leaks.
func TestManyRuns(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("-short: skipping 1,000 runs")
	}
	dir := dataDir(t)
	for i := 0; i < 1000; i++ {
		out, err := exec.Command(soulboxBin, "run", "--data-dir", dir, "--", "/bin/true").CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v: %s", i, err, out)
		}
	}
	hostClean(t, dir)
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
