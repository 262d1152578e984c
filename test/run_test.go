package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunBasics(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	cases := []struct {
		name       string
		flags      []string
		cmd        []string
		wantStatus string
		wantCode   int
		wantOut    string
	}{
		{"true", nil, []string{"/bin/true"}, "OK", 0, ""},
		{"echo", nil, []string{"echo", "hello"}, "OK", 0, "hello\n"},
		{"exit code", nil, []string{"sh", "-c", "exit 7"}, "RE", 7, ""},
		{"whoami", nil, []string{"sh", "-c", "id -u; id -g; echo $HOME; pwd; hostname"}, "OK", 0, "1000\n1000\n/home/user\n/home/user\nsoulbox\n"},
		{"env", []string{"--env", "FOO=bar baz"}, []string{"sh", "-c", "echo $FOO"}, "OK", 0, "bar baz\n"},
		{"not found", nil, []string{"no-such-command"}, "RE", 127, ""},
		{"signal", nil, []string{"sh", "-c", "kill -SEGV $$"}, "SG", 128 + 11, ""},
		{"only lo", nil, []string{"sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"}, "OK", 0, "lo\n"},
		{"writable home and tmp", nil, []string{"sh", "-c", "echo a > ~/f && echo b > /tmp/g && cat ~/f /tmp/g"}, "OK", 0, "a\nb\n"},
		{"usr read-only", nil, []string{"sh", "-c", "touch /usr/x 2>/dev/null || echo denied"}, "OK", 0, "denied\n"},
		{"pid namespace", nil, []string{"sh", "-c", "n=$(ls /proc | grep -cE '^[0-9]+$'); [ $n -le 5 ] && tr '\\0' ' ' </proc/1/cmdline"}, "OK", 0, "soulbox-init "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := soulboxRun(t, dir, tc.flags, tc.cmd...)
			if res.Status != tc.wantStatus || res.ExitCode != tc.wantCode {
				t.Fatalf("status %s exit %d, want %s %d (stderr %q)", res.Status, res.ExitCode, tc.wantStatus, tc.wantCode, res.Stderr)
			}
			if tc.wantOut != "" && res.Stdout != tc.wantOut {
				t.Errorf("stdout %q, want %q", res.Stdout, tc.wantOut)
			}
		})
	}
	hostClean(t, dir)
}

func TestRunStdinAndCopyIn(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	in := filepath.Join(dataDir(t), "in.txt")
	os.WriteFile(in, []byte("3 4\n"), 0o644)
	script := filepath.Join(dataDir(t), "sum.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nread a b; echo $((a+b))\n"), 0o750)
	res := soulboxRun(t, dir, []string{"--stdin", in, "--copy-in", "bin/sum.sh=" + script}, "sh", "-c", "ls -l bin/sum.sh | cut -c1-10; ./bin/sum.sh")
	if res.Status != "OK" || res.Stdout != "-rwxr-x---\n7\n" {
		t.Fatalf("got %s %q %q, want OK with mode and sum", res.Status, res.Stdout, res.Stderr)
	}
}

func TestRunBadFlags(t *testing.T) {
	cases := [][]string{
		{"--memory", "0", "--", "true"},
		{"--memory", "-5M", "--", "true"},
		{"--memory", "lots", "--", "true"},
		{"--memory", "100T", "--", "true"},
		{"--cpus", "0", "--", "true"},
		{"--cpus", "1000", "--", "true"},
		{"--timeout", "-1s", "--", "true"},
		{"--pids", "0", "--", "true"},
		{"--output-limit", "0", "--", "true"},
		{"--env", "NOEQUALS", "--", "true"},
		{"--copy-in", "../x=/etc/hostname", "--", "true"},
		{"--no-such-flag", "--", "true"},
		{},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.Command(soulboxBin, append([]string{"run", "--data-dir", "/nonexistent-soulbox"}, args...)...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output %s", err, out)
			}
			if !strings.Contains(string(out), "soulbox:") && !strings.Contains(string(out), "Error") {
				t.Errorf("no clear message: %q", out)
			}
		})
	}
}

// TestPosture reads a live sandboxed process from the host.
func TestPosture(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	// Launched with signal 32 ignored (which Go leaves ignored across its
	// own exec): the program must still start with default dispositions.
	cmd := exec.Command(probeBin, "ignore-signal-exec", soulboxBin, "run", "--data-dir", dir, "--", "sleep", "31.4159")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait(); hostClean(t, dir) }()
	pid := waitForProcess(t, "sleep\x0031.4159")
	waitUntilSleeping(t, pid)
	checkPosture(t, pid, "run-")
	// The init (the sleeping program's parent) must hold nothing either,
	// on every one of its threads, and all of them live in the cgroup.
	initPid := ppid(t, pid)
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", initPid))
	if len(tasks) == 0 {
		t.Fatal("no threads listed for the sandbox init")
	}
	for _, task := range tasks {
		b, _ := os.ReadFile(task + "/status")
		st := string(b)
		for _, want := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapInh:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
			if !strings.Contains(st, want) {
				t.Errorf("init thread %s: want %q in its status", task, want)
			}
		}
		if cg, _ := os.ReadFile(task + "/cgroup"); !strings.Contains(string(cg), "soulbox/run-") {
			t.Errorf("init thread %s is outside the sandbox cgroup: %s", task, cg)
		}
	}
	initStatus := readStatus(t, initPid)
	for _, f := range []string{"CapPrm", "CapEff", "CapBnd"} {
		if initStatus[f] != "0000000000000000" {
			t.Errorf("sandbox init %s = %s, want none", f, initStatus[f])
		}
	}
	if initStatus["Seccomp"] != "2" || initStatus["NoNewPrivs"] != "1" {
		t.Errorf("sandbox init Seccomp %s NoNewPrivs %s, want 2 and 1", initStatus["Seccomp"], initStatus["NoNewPrivs"])
	}
}

func waitForProcess(t *testing.T, cmdline string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, _ := os.ReadFile(p)
			if strings.TrimRight(string(b), "\x00") == cmdline {
				var pid int
				fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %q never appeared", cmdline)
	return 0
}

// waitUntilSleeping waits until pid is blocked in nanosleep, so its start-up
// (which opens and closes locale files) is over when its fds are listed.
func waitUntilSleeping(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == "230" || f[0] == "35") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never blocked in nanosleep", pid)
}

func readStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func ppid(t *testing.T, pid int) int {
	var p int
	fmt.Sscan(readStatus(t, pid)["PPid"], &p)
	// PPid is shown in the reader's pid namespace: the host pid of the init.
	return p
}

func TestEscapesFail(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	canary := fmt.Sprintf("/root/soulbox-canary-%d", os.Getpid())
	os.WriteFile(canary, []byte("secret"), 0o644)
	defer os.Remove(canary)
	os.WriteFile(filepath.Join(dir, "canary"), []byte("secret"), 0o644)
	host := exec.Command("sleep", "300")
	host.Start()
	defer host.Process.Kill()

	res := soulboxRun(t, dir, []string{"--copy-in", "probe=" + probeBin}, "./probe")
	var got map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
		t.Fatalf("probe output %q: %v (stderr %q)", res.Stdout, err, res.Stderr)
	}
	want := probeGolden(t)
	for op, w := range want {
		if got[op] != w {
			t.Errorf("%s: got %q, want %q", op, got[op], w)
		}
	}
	// kill(-1, 0) may succeed inside the namespace but must not reach the host.
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("host canary process died: %v", err)
	}
	res = soulboxRun(t, dir, nil, "sh", "-c", "kill -9 -1; cat "+canary+" "+dir+"/canary /etc/shadow 2>&1; ls /root /var/lib 2>&1; echo end")
	if strings.Contains(res.Stdout, "secret") {
		t.Errorf("a planted host file was readable: %q", res.Stdout)
	}
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("kill(-1) inside reached the host canary: %v", err)
	}
	hostClean(t, dir)
}

// TestRunnerKilled: when the runner is SIGKILLed mid-run, the sandbox dies
// with it (parent-death signal) and the next run removes its cgroup.
func TestRunnerKilled(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	cmd := exec.Command(soulboxBin, "run", "--data-dir", dir, "--", "sleep", "27.1828")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForProcess(t, "sleep\x0027.1828")
	cmd.Process.Kill()
	cmd.Wait()
	if res := soulboxRun(t, dir, nil, "true"); res.Status != "OK" {
		t.Fatalf("next run: %s", res.Status)
	}
	hostClean(t, dir)
}

// TestAPIKeyCLI drives `soulbox apikey` as an operator would, without a
// daemon: the key is printed on the last line, listed without its secret,
// and revocable; bad input gets a clear error and a non-zero exit.
func TestAPIKeyCLI(t *testing.T) {
	dir := dataDir(t)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(soulboxBin, append([]string{"apikey"}, append(args, "--data-dir", dir)...)...).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	out, code := run("create", "--name", "ci", "--e2b")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(key, "e2b_") || len(key) != 44 {
		t.Fatalf("create: exit %d, last line %q", code, key)
	}
	list, _ := run("ls")
	if strings.Contains(list, key[4:]) || !strings.Contains(list, "ci") || !strings.Contains(list, "active") {
		t.Fatalf("ls shows %q", list)
	}
	id := strings.Fields(strings.Split(list, "\n")[1])[0]
	if _, code := run("revoke", id); code != 0 {
		t.Fatalf("revoke exit %d", code)
	}
	if list, _ := run("ls"); !strings.Contains(list, "revoked") {
		t.Errorf("after revoke, ls shows %q", list)
	}
	if _, code := run("revoke", "no-such-id"); code != 1 {
		t.Errorf("revoke unknown id: exit %d, want 1", code)
	}
	if _, code := run("revoke"); code != 2 {
		t.Errorf("revoke without id: exit %d, want 2", code)
	}
}
