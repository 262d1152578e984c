package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/sigreset"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// TestLongLivedSandboxAgent starts a long-lived sandbox, runs commands
// through its agent over the host-only socket, checks the agent's and the
// commands' posture from the host, and kills it leaving nothing behind.
func TestLongLivedSandboxAgent(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt, err := runtime.New(ctx, runtime.Config{DataDir: dir, Exe: soulboxFullBin, AgentExe: soulboxFullBin})
	if err != nil {
		t.Fatal(err)
	}
	// Started with signal 32 ignored, which the init inherits: commands
	// must still start with default signal dispositions.
	ignoreSignal32(t)
	box, err := rt.Start(ctx, runtime.Spec{Limits: limits.Defaults()})
	sigreset.ResetIgnored()
	if err != nil {
		t.Fatal(err)
	}
	defer box.Kill()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "*", "agent.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s: %s", l, b)
			}
		}
	})
	for _, h2c := range []bool{false, true} {
		c := processconnect.NewProcessClient(box.HTTPClient(h2c), "http://agent")
		run := func(args ...string) (string, int32) {
			t.Helper()
			return runStream(t, ctx, c, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}})
		}
		if out, code := run("sh", "-c", "id -u; pwd; echo $HOME; exit 4"); out != "1000\n/home/user\n/home/user\n" || code != 4 {
			t.Errorf("h2c=%v: got %q exit %d", h2c, out, code)
		}
	}
	// A command run as the sandbox's root has no capabilities either.
	rootReq := connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "sh", Args: []string{"-c", "id -u; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"}}})
	rootReq.Header().Set("Authorization", "Basic cm9vdDo=") // "root:"
	rs, err := processconnect.NewProcessClient(box.HTTPClient(false), "http://agent").Start(ctx, rootReq)
	if err != nil {
		t.Fatal(err)
	}
	var rootOut string
	for rs.Receive() {
		rootOut += string(rs.Msg().GetEvent().GetData().GetStdout())
	}
	if want := "0\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\n"; rootOut != want {
		t.Errorf("root command: %q, want uid 0 without capabilities", rootOut)
	}

	// State persists between commands; a background process keeps running.
	c := processconnect.NewProcessClient(box.HTTPClient(false), "http://agent")
	start := func(tag string, args ...string) {
		t.Helper()
		s, err := c.Start(ctx, connect.NewRequest(&pb.StartRequest{Tag: &tag, Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}}))
		if err != nil {
			t.Fatal(err)
		}
		s.Receive()
		s.Close()
	}
	start("writer", "sh", "-c", "echo kept > ~/state")
	start("sleeper", "sleep", "77.77")
	pid := waitForProcess(t, "sleep\x0077.77")
	waitUntilSleeping(t, pid)
	st := readStatus(t, pid)
	if st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" || st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" {
		t.Errorf("command posture: CapEff %s CapBnd %s Seccomp %s NoNewPrivs %s", st["CapEff"], st["CapBnd"], st["Seccomp"], st["NoNewPrivs"])
	}
	// Commands start with default signal dispositions (an ignored signal
	// would be inherited from the agent across exec).
	if st["SigIgn"] != "0000000000000000" {
		t.Errorf("command ignores signals: SigIgn %s", st["SigIgn"])
	}
	// Only fds 0-2 reach it.
	if fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); len(fds) != 3 {
		t.Errorf("command has %d descriptors, want 3", len(fds))
	}
	agent := readStatus(t, ppid(t, pid))
	// The agent keeps only setuid, setgid and kill (to run and signal
	// processes as "user"), inside its own user namespace.
	if want := fmt.Sprintf("%016x", 1<<5|1<<6|1<<7); agent["CapEff"] != want || agent["CapBnd"] != "0000000000000000" || agent["Seccomp"] != "2" || agent["NoNewPrivs"] != "1" {
		t.Errorf("agent posture: CapEff %s (want %s) CapBnd %s Seccomp %s NoNewPrivs %s", agent["CapEff"], want, agent["CapBnd"], agent["Seccomp"], agent["NoNewPrivs"])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := c.Start(ctx, connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "cat", Args: []string{"/home/user/state"}}}))
		if err != nil {
			t.Fatal(err)
		}
		var out string
		for s.Receive() {
			out += string(s.Msg().GetEvent().GetData().GetStdout())
		}
		if out == "kept\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file written by an earlier command: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := c.List(ctx, connect.NewRequest(&pb.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 1 || list.Msg.GetProcesses()[0].GetTag() != "sleeper" {
		t.Errorf("list: %v %v", list, err)
	}
	if err := box.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-box.Done():
	default:
		t.Error("Kill returned before the init exited")
	}
	hostClean(t, dir)
}

// ignoreSignal32 makes this process ignore signal 32, which the Go runtime
// leaves alone, so children inherit the disposition.
func ignoreSignal32(t *testing.T) {
	t.Helper()
	act := struct{ handler, flags, restorer, mask uint64 }{handler: 1} // SIG_IGN
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, 32, uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		t.Fatal(e)
	}
}
