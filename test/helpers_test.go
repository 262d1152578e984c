// Package test holds SoulBox's end-to-end tests: they build the real
// soulbox binary and drive it as a user would.
package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	soulboxBin string // built once by TestMain: the front users run
	// soulboxFullBin is the full program embedded in soulboxBin (for
	// runtime.Config's Exe and AgentExe, which start it under the init's
	// and the agent's names).
	soulboxFullBin string
	probeBin       string
	netprobeBin    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("/var/tmp", "soulbox-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	soulboxBin = filepath.Join(dir, "soulbox")
	soulboxFullBin = "../internal/fullbin/soulbox-full"
	probeBin = filepath.Join(dir, "probe")
	netprobeBin = filepath.Join(dir, "netprobe")
	// As `make build` does: the small init first, then the full soulbox
	// with it embedded (internal/initbin), then the front with that
	// embedded (internal/fullbin).
	// The embedded ones get their SHA-256 beside them.
	for _, b := range []struct {
		out, pkg, tags string
		embedded       bool
	}{
		{"../internal/initbin/soulbox-init", "../cmd/soulbox-init", "", true},
		{soulboxFullBin, "../cmd/soulbox", "soulbox_embedinit", true},
		{soulboxBin, "../cmd/soulbox", "soulbox_front", false},
		{probeBin, "./probe", "", false},
		{netprobeBin, "./netprobe", "", false},
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-tags", b.tags, "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", b.pkg, err)
			return 1
		}
		if b.embedded {
			bin, err := os.ReadFile(b.out)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			sum := sha256.Sum256(bin)
			if err := os.WriteFile(b.out+".sha256", []byte(hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return m.Run()
}

// requireRoot skips the test when not root, except under CI=true where a
// missing capability is a failure: CI must never go green by skipping.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root, and CI=true: failing instead of skipping")
	}
	t.Skip("needs root (run as root or with CI=true as root)")
}

// dataDir makes a data directory whose ancestors the sandbox's unprivileged
// host uid can traverse.
func dataDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "soulbox-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// runResult is the JSON printed by `soulbox run --json`.
type runResult struct {
	Status          string  `json:"status"`
	ExitCode        int     `json:"exit_code"`
	Signal          *string `json:"signal"`
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
	WallMS          float64 `json:"wall_ms"`
	CPUMS           float64 `json:"cpu_ms"`
	PeakMemoryBytes int64   `json:"peak_memory_bytes"`
	Error           string  `json:"error"`
}

// soulboxRun runs `soulbox run --json --data-dir DIR FLAGS -- CMD` and
// decodes the single JSON object it must print.
func soulboxRun(t testing.TB, dir string, flags []string, cmdline ...string) runResult {
	t.Helper()
	args := append([]string{"run", "--json", "--data-dir", dir}, flags...)
	args = append(append(args, "--"), cmdline...)
	cmd := exec.Command(soulboxBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	var res runResult
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	if derr := dec.Decode(&res); derr != nil {
		t.Fatalf("soulbox %v: no JSON result (exit %v): %v\nstdout: %q\nstderr: %s", args, err, derr, stdout.String(), stderr.String())
	}
	if dec.More() {
		t.Fatalf("soulbox %v printed more than one JSON object: %q", args, stdout.String())
	}
	if res.Status == "XX" {
		t.Fatalf("soulbox %v: internal error: %s\nstderr: %s", args, res.Error, stderr.String())
	}
	return res
}

// hostClean asserts nothing of any sandbox remains on the host: processes
// in SoulBox's uid ranges, cgroups, mounts under the data dir.
func hostClean(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		problems := leftovers(dir)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leftovers on the host:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leftovers(dir string) []string {
	var problems []string
	// Sandboxes of other data directories (another daemon or suite on
	// this host) are not this test's.
	mine := func(cgroupName string) bool {
		return strings.HasPrefix(cgroupName, "run-"+instanceOf(dir)+"-") || strings.HasPrefix(cgroupName, "sbx-"+instanceOf(dir)+"-")
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cgroup"))
		if strings.Contains(string(cg), "/soulbox/") && !strings.Contains(string(cg), "-"+instanceOf(dir)+"-") {
			continue // another data directory's sandbox (a concurrent suite)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == "Uid:" {
				var uid int64
				fmt.Sscan(f[2], &uid)
				if uid >= 1<<28 && uid < 1<<31 {
					problems = append(problems, "process "+p+" runs as sandbox uid "+f[2])
				}
			}
		}
	}
	for _, root := range []string{"/sys/fs/cgroup/memory/soulbox", "/sys/fs/cgroup/pids/soulbox", "/sys/fs/cgroup/cpu/soulbox", "/sys/fs/cgroup/soulbox"} {
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if e.IsDir() && mine(e.Name()) {
				problems = append(problems, "cgroup "+root+"/"+e.Name())
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, dir) {
			problems = append(problems, "mount: "+line)
		}
	}
	return problems
}

// flockTry takes and drops an exclusive lock on f without blocking.
func flockTry(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return err
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// instanceOf is the runtime's tag of a data directory in sandbox cgroup
// names (internal/runtime instanceOf).
func instanceOf(dir string) string {
	abs, _ := filepath.Abs(dir)
	sum := sha256.Sum256([]byte(abs))
	return "d" + hex.EncodeToString(sum[:4])
}
