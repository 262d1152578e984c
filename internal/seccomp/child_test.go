//go:build linux

package seccomp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel tests install the real filter in a child: the test binary
// re-executed with childEnv set, intercepted by TestMain before any test
// runs. A filter can never be removed, so it must not touch the test
// process itself. No privileges are needed: the child sets no_new_privs.
const childEnv = "SOULBOX_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childEnv); ok {
		// no_new_privs is per thread: set it and install the filter on
		// the same one, as the sandbox init does.
		runtime.LockOSThread()
		os.Exit(childMain(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// childMain runs in the re-executed test binary and returns its exit code.
func childMain(mode string, args []string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "seccomp test child (%s): %s\n", mode, fmt.Sprintf(format, a...))
		return 3
	}
	switch mode {
	case "probe-baseline", "probe-filtered":
		if mode == "probe-filtered" {
			if err := installDefault(); err != nil {
				return fail("%v", err)
			}
		}
		results := map[string]int{}
		for _, p := range probes() {
			if mode == "probe-baseline" && p.noBaseline {
				continue
			}
			results[p.name] = int(p.run())
		}
		if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
			return fail("%v", err)
		}
		return 0
	case "x32-baseline", "x32-filtered":
		// No core file: the filtered child is meant to die of SIGSYS.
		if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
			return fail("%v", err)
		}
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fail("%v", err)
		}
		if mode == "x32-filtered" {
			if err := installDefault(); err != nil {
				return fail("%v", err)
			}
		}
		e := sys(0x40000000 | unix.SYS_GETPID)
		fmt.Printf("x32 getpid returned (errno %d)\n", e)
		return 0
	case "workload":
		if err := json.NewEncoder(os.Stdout).Encode(workload()); err != nil {
			return fail("%v", err)
		}
		return 0
	case "exec":
		if len(args) == 0 {
			return fail("no command")
		}
		if err := installDefault(); err != nil {
			return fail("%v", err)
		}
		path, err := exec.LookPath(args[0])
		if err != nil {
			return fail("%v", err)
		}
		env := withoutEnv(os.Environ(), childEnv)
		return fail("exec %s: %v", path, unix.Exec(path, args, env))
	case "no-nnp":
		if nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); nnp == 1 {
			fmt.Println("skip: no_new_privs is inherited from the test's environment")
			return 0
		}
		prog, err := Default().Compile()
		if err != nil {
			return fail("%v", err)
		}
		err = Install(prog)
		fmt.Printf("errors.Is(err, ErrNoNewPrivs)=%v err=%v\n", errors.Is(err, ErrNoNewPrivs), err)
		return 0
	default:
		return fail("unknown mode")
	}
}

func installDefault() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	prog, err := Default().Compile()
	if err != nil {
		return err
	}
	return Install(prog)
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// workloadChecks names every check workload reports, so that a check
// silently dropped from the child fails the parent.
var workloadChecks = []string{
	"install", "thread created before install is filtered", "all threads in seccomp filter mode",
	"new threads", "exec /bin/true", "sh fork and pipe",
}

// workload runs in a filtered child: threads, fork and exec must work, and
// TSYNC must have filtered the threads that existed before Install.
// Each check maps to "" on success or a description of the failure.
func workload() map[string]string {
	res := map[string]string{}
	for _, c := range workloadChecks {
		res[c] = "not run"
	}
	ready, do, done := make(chan struct{}), make(chan struct{}), make(chan unix.Errno)
	go func() {
		runtime.LockOSThread()
		close(ready)
		<-do
		empty := []byte{0}
		p := uintptr(unsafe.Pointer(&empty[0]))
		done <- sys(unix.SYS_MOUNT, p, p, p, 0, 0)
	}()
	<-ready
	threadsBefore, err := os.ReadDir("/proc/self/task")
	if err != nil {
		res["new threads"] = err.Error()
		return res
	}

	if err := installDefault(); err != nil {
		res["install"] = err.Error()
		return res
	}
	res["install"] = ""

	close(do)
	if e := <-done; e != unix.EPERM {
		res["thread created before install is filtered"] = fmt.Sprintf("mount from it: got %v, want EPERM", e)
	} else {
		res["thread created before install is filtered"] = ""
	}

	// Locked goroutines each hold an OS thread, forcing clone() calls
	// under the filter.
	const n = 16
	tids := make(chan int, n)
	release := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
	}
	seen := map[int]bool{}
	for range n {
		seen[<-tids] = true
	}
	switch {
	case len(threadsBefore) >= n:
		res["new threads"] = fmt.Sprintf("process already had %d threads; raise n above it", len(threadsBefore))
	case len(seen) != n:
		res["new threads"] = fmt.Sprintf("got %d distinct threads, want %d", len(seen), n)
	default:
		res["new threads"] = ""
	}
	res["all threads in seccomp filter mode"] = checkAllThreadsFiltered()
	close(release)

	if err := exec.Command("/bin/true").Run(); err != nil {
		res["exec /bin/true"] = err.Error()
	} else {
		res["exec /bin/true"] = ""
	}
	out, err := exec.Command("/bin/sh", "-c", "(echo ok; /bin/true) | cat").CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		res["sh fork and pipe"] = fmt.Sprintf("output %q, error %v", out, err)
	} else {
		res["sh fork and pipe"] = ""
	}
	return res
}

func checkAllThreadsFiltered() string {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err.Error()
	}
	var bad []string
	for _, task := range tasks {
		status, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) { // thread exited meanwhile
				continue
			}
			return err.Error()
		}
		if !strings.Contains(string(status), "\nSeccomp:\t2\n") {
			bad = append(bad, task.Name())
		}
	}
	if len(bad) > 0 {
		return fmt.Sprintf("threads %v of %d are not in seccomp mode 2", bad, len(tasks))
	}
	return ""
}

// runChild re-executes the test binary in mode and returns its stdout and
// exit state. It fails the test only if the child could not be started.
func runChild(t *testing.T, mode string, args ...string) (string, *os.ProcessState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Dir = t.TempDir()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run child %s: %v", mode, err)
	}
	if stderr.Len() > 0 {
		t.Logf("child %s stderr:\n%s", mode, stderr.String())
	}
	return stdout.String(), cmd.ProcessState
}

func runProbes(t *testing.T, mode string) map[string]int {
	t.Helper()
	out, state := runChild(t, mode)
	if !state.Success() {
		t.Fatalf("child %s: %v", mode, state)
	}
	var res map[string]int
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("child %s output %q: %v", mode, out, err)
	}
	return res
}

func errnoString(e unix.Errno) string {
	if e == 0 {
		return "success"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}
