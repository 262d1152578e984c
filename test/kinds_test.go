package test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// TestPostureEveryKind runs the posture check and the probe against every
// kind of long-lived sandbox: fresh (from the warm pool), cold (its own
// disk size), paused and resumed, and re-adopted after a daemon SIGKILL.
// (One-shot runs: TestPosture and TestEscapesFail.)
func TestPostureEveryKind(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	probe, err := os.ReadFile(probeBin)
	if err != nil {
		t.Fatal(err)
	}
	client := func() *soulbox.Client { return sdkClient(t, d, key) }
	pooled, err := client().Create(ctx, soulbox.CreateOptions{Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cold, err := client().Create(ctx, soulbox.CreateOptions{Timeout: 10 * time.Minute, Limits: soulbox.Limits{DiskSizeMB: 300}})
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	check := func(kind string, sbx *soulbox.Sandbox) {
		t.Helper()
		seq++
		// A process to read from the host, with a name no other test uses.
		arg := fmt.Sprintf("%d.%d", 6000+seq, os.Getpid()%1000)
		h, err := sbx.Commands.StartArgv(ctx, []string{"sleep", arg})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		pid := waitForProcess(t, "sleep\x00"+arg)
		waitUntilSleeping(t, pid)
		t.Run(kind+"/posture", func(t *testing.T) { checkPosture(t, pid, "sbx-") })
		h.Kill(ctx)
		res, err := sbx.Commands.Run(ctx, "./probe")
		if err != nil {
			t.Fatalf("%s: probe: %v", kind, err)
		}
		t.Run(kind+"/probe", func(t *testing.T) { checkProbe(t, res.Stdout) })
	}
	for _, sbx := range []*soulbox.Sandbox{pooled, cold} {
		if err := sbx.Files.WriteFile(ctx, "/home/user/probe", probe); err != nil {
			t.Fatal(err)
		}
		if _, err := sbx.Commands.Run(ctx, "chmod +x probe"); err != nil {
			t.Fatal(err)
		}
	}
	check("pooled", pooled)
	check("cold", cold)
	if err := pooled.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pooled.Resume(ctx, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	check("resumed", pooled)
	d.stop(syscall.SIGKILL)
	d = startDaemon(t, dir)
	adopted, err := client().Connect(ctx, cold.ID)
	if err != nil {
		t.Fatal(err)
	}
	check("adopted", adopted)
}

// TestCrossSandboxIsolation: what one sandbox creates in shared kernel
// name spaces — SysV IPC, POSIX shared memory, abstract Unix sockets,
// processes, host names — is invisible to another sandbox.
func TestCrossSandboxIsolation(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ipcmk")
	_, c := sdkDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := c.Create(ctx, soulbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create(ctx, soulbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// In A: a SysV segment, a /dev/shm file, an abstract socket listener,
	// a long-running process.
	if _, err := a.Commands.Run(ctx, "ipcmk -M 4096 && ipcmk -Q && echo secret > /dev/shm/a-secret && ipcs -m | grep -c 4096"); err != nil {
		t.Fatalf("set up A: %v", err)
	}
	listener, err := a.Commands.Start(ctx, `python3 -c "
import socket,time
s=socket.socket(socket.AF_UNIX); s.bind('\0soulbox-a'); s.listen(); print('listening', flush=True); time.sleep(300)"`)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Kill(ctx)
	sleeper, err := a.Commands.StartArgv(ctx, []string{"sleep", "271.828"})
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Kill(ctx)
	// Control: A itself reaches its socket (so B's refusal means something).
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _ := a.Commands.Run(ctx, `python3 -c "
import socket
s=socket.socket(socket.AF_UNIX)
try:
    s.connect('\0soulbox-a'); print('connected')
except OSError as e: print('refused', e.errno)"`)
		if r != nil && r.Stdout == "connected\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A cannot reach its own abstract socket: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// From B: none of it.
	res, err := b.Commands.Run(ctx, `
ipcs -m | grep -c 4096 || true
ipcs -q | grep -c -E '^0x' || true
cat /dev/shm/a-secret 2>&1 || true
python3 -c "
import socket
s=socket.socket(socket.AF_UNIX)
try:
    s.connect('\0soulbox-a'); print('connected')
except OSError as e: print('refused', e.errno)"
pgrep -x sleep || echo no-process
# A's pid means nothing here; if B happens to use the same number for
# one of its own processes, there is nothing of A's to aim at.
if [ -e /proc/`+fmt.Sprint(sleeper.PID())+` ]; then echo pid-taken-in-B; else kill -9 `+fmt.Sprint(sleeper.PID())+` 2>&1 || true; fi
`)
	if err != nil {
		t.Fatalf("B: %v", err)
	}
	killRefused := strings.Contains(res.Stdout, "No such process") || strings.Contains(res.Stdout, "pid-taken-in-B")
	if !strings.HasPrefix(res.Stdout, "0\n0\n") || !containsAll(res.Stdout, "a-secret: No such file", "refused", "no-process") || !killRefused {
		t.Fatalf("B saw A: %q", res.Stdout)
	}
	// A's process survived B's kill attempt.
	if out, _ := a.Commands.Run(ctx, "pgrep -x sleep >/dev/null && echo alive"); out.Stdout != "alive\n" {
		t.Fatalf("A's process after B's kill: %q", out.Stdout)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
