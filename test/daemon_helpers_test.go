package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/runtime"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// daemon is a `soulbox serve` process started by a test.
type daemon struct {
	t    testing.TB
	dir  string
	url  string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// startDaemon runs `soulbox serve` on a free loopback port with dir as its
// data directory and waits until it serves.
func startDaemon(t testing.TB, dir string, extra ...string) *daemon {
	t.Helper()
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir}, extra...)
	if !slices.Contains(extra, "--run-pool") {
		// The run pool (TestRunPool) fills in the background: other
		// tests' baselines of the daemon's descriptors and threads would
		// move under them.
		args = append(args, "--run-pool", "0")
	}
	cmd := exec.Command(soulboxBin, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	d := &daemon{t: t, dir: dir, cmd: cmd, logs: &bytes.Buffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); pw.Close(); close(d.done) }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			d.logs.WriteString(line + "\n")
			if u, ok := strings.CutPrefix(line, "soulbox: serving on "); ok {
				ready <- u
			}
		}
	}()
	select {
	case d.url = <-ready:
	case <-d.done:
		t.Fatalf("daemon exited: %s", d.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("daemon did not start: %s", d.logs)
	}
	t.Cleanup(func() {
		d.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
			logs, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "*", "agent.log"))
			for _, l := range logs {
				if b, err := os.ReadFile(l); err == nil && len(b) > 0 {
					t.Logf("%s:\n%s", l, runtime.CrashExcerpt(b, 4096))
				}
			}
		}
		// Sandboxes outlive their daemon: end what the test left.
		destroySandboxes(t, dir)
	})
	return d
}

// stop signals the daemon and waits for it to exit.
func (d *daemon) stop(sig syscall.Signal) {
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.t.Errorf("daemon did not exit on %v", sig)
		d.cmd.Process.Kill()
		<-d.done
	}
}

// newAPIKey creates a key with `soulbox apikey create`.
func newAPIKey(t testing.TB, dir string, flags ...string) string {
	t.Helper()
	out, err := exec.Command(soulboxBin, append([]string{"apikey", "create", "--data-dir", dir}, flags...)...).Output()
	if err != nil {
		t.Fatalf("apikey create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// call makes a control-plane request and decodes a JSON answer into out
// (if non-nil); it returns the status.
func (d *daemon) call(key, method, path string, body any, out any) int {
	d.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, d.url+path, rd)
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			d.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type created struct {
	SandboxID       string `json:"sandboxID"`
	EnvdAccessToken string `json:"envdAccessToken"`
	EnvdVersion     string `json:"envdVersion"`
}

type apiErr struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (d *daemon) create(key string, body any) created {
	d.t.Helper()
	var c created
	if st := d.call(key, "POST", "/sandboxes", body, &c); st != http.StatusCreated {
		d.t.Fatalf("create: status %d", st)
	}
	return c
}

// headerTransport adds the data-plane headers the E2B SDKs send.
type headerTransport struct {
	id, token string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("E2b-Sandbox-Id", h.id)
	r.Header.Set("E2b-Sandbox-Port", "49983")
	r.Header.Set("X-Access-Token", h.token)
	return http.DefaultTransport.RoundTrip(r)
}

func (d *daemon) procClient(c created) processconnect.ProcessClient {
	return processconnect.NewProcessClient(&http.Client{Transport: headerTransport{c.SandboxID, c.EnvdAccessToken}}, d.url)
}

// exec runs a command in the sandbox through the daemon and returns its
// output and exit code.
func (d *daemon) exec(ctx context.Context, c created, tag string, args ...string) (string, int32) {
	d.t.Helper()
	req := &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}}
	if tag != "" {
		req.Tag = &tag
	}
	return runStream(d.t, ctx, d.procClient(c), req)
}

// runStream starts a process and collects its output (stdout and stderr
// together) and exit code (-100 if the stream carried no end event).
func runStream(t testing.TB, ctx context.Context, c processconnect.ProcessClient, req *pb.StartRequest) (string, int32) {
	t.Helper()
	out, code, err := startStream(ctx, c, req)
	if err != nil {
		t.Fatal(err)
	}
	return out, code
}

// startStream is runStream returning its error.
func startStream(ctx context.Context, c processconnect.ProcessClient, req *pb.StartRequest) (string, int32, error) {
	s, err := c.Start(ctx, connect.NewRequest(req))
	if err != nil {
		return "", 0, err
	}
	var out strings.Builder
	var code int32 = -100
	for s.Receive() {
		ev := s.Msg().GetEvent()
		out.Write(ev.GetData().GetStdout())
		out.Write(ev.GetData().GetStderr())
		if e := ev.GetEnd(); e != nil {
			code = e.GetExitCode()
		}
	}
	if err := s.Err(); err != nil {
		return out.String(), code, fmt.Errorf("%s %v: %w", req.GetProcess().GetCmd(), req.GetProcess().GetArgs(), err)
	}
	return out.String(), code, nil
}

// dumpAgent logs the goroutines of sandbox id's agent that run SoulBox
// code: on SIGQUIT the agent writes every goroutine's stack to its log
// (under the data directory dir) and goes on.
func dumpAgent(t *testing.T, dir, id string) {
	t.Helper()
	for _, cg := range sandboxCgroups(id) {
		b, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		for _, pid := range strings.Fields(string(b)) {
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			if !strings.HasPrefix(string(cmd), "soulbox-agent") {
				continue
			}
			// Opened first, in case the agent ends meanwhile and the
			// daemon removes the sandbox's directory.
			f, err := os.Open(filepath.Join(dir, "sandboxes", id, "agent.log"))
			if err != nil {
				t.Logf("sandbox %s: %v", id, err)
				return
			}
			defer f.Close()
			n, _ := strconv.Atoi(pid)
			syscall.Kill(n, syscall.SIGQUIT)
			time.Sleep(time.Second)
			log, _ := io.ReadAll(f)
			var ours []string
			for _, g := range strings.Split(string(log), "\n\n") {
				if strings.Contains(g, "soulbox/internal") {
					ours = append(ours, g)
				}
			}
			t.Logf("sandbox %s: agent (pid %s) goroutines in SoulBox code:\n%s", id, pid, strings.Join(ours, "\n\n"))
			return
		}
	}
	t.Logf("sandbox %s: no agent found", id)
}

// startBackground starts a command and returns as soon as it started.
func (d *daemon) startBackground(ctx context.Context, c created, tag string, args ...string) uint32 {
	d.t.Helper()
	s, err := d.procClient(c).Start(ctx, connect.NewRequest(&pb.StartRequest{Tag: &tag, Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}}))
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	if !s.Receive() {
		d.t.Fatalf("%v: no start event: %v", args, s.Err())
	}
	return s.Msg().GetEvent().GetStart().GetPid()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// destroySandboxes kills every sandbox of the data directory (what a
// daemon leaves running when it stops) and removes their cgroups, nested
// ones (a long-lived sandbox's tenant cgroup) first.
func destroySandboxes(t testing.TB, dir string) {
	prefix := "sbx-" + instanceOf(dir) + "-"
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/soulbox/" + prefix + "*")
	v2, _ := filepath.Glob("/sys/fs/cgroup/soulbox/" + prefix + "*")
	cgs = append(cgs, v2...)
	var all []string // every cgroup directory, each after those it holds
	for _, cg := range cgs {
		nested, _ := filepath.Glob(filepath.Join(cg, "*", "cgroup.procs"))
		for _, n := range nested {
			all = append(all, filepath.Dir(n))
		}
		all = append(all, cg)
	}
	for _, cg := range all {
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(f)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, cg := range all {
		deadline := time.Now().Add(5 * time.Second)
		for os.Remove(cg) != nil && fileExists(cg) && time.Now().Before(deadline) {
			// Thaw a paused one (v1 freezer) so its processes can die.
			os.WriteFile(filepath.Join(cg, "freezer.state"), []byte("THAWED"), 0)
			os.WriteFile(filepath.Join(cg, "cgroup.freeze"), []byte("0"), 0)
			time.Sleep(20 * time.Millisecond)
		}
		if fileExists(cg) {
			stuck := stuckTasks(cg)
			// Linux 6.18's CFS bandwidth throttling can leave a cgroup's
			// tasks throttled for good; lifting the quota unthrottles it.
			os.WriteFile(filepath.Join(cg, "cpu.cfs_quota_us"), []byte("-1"), 0)
			os.WriteFile(filepath.Join(cg, "cpu.max"), []byte("max"), 0)
			deadline := time.Now().Add(5 * time.Second)
			for os.Remove(cg) != nil && fileExists(cg) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("cannot remove %s (removed after lifting the CPU quota: %v):%s", cg, !fileExists(cg), stuck)
		}
	}
}

// stuckTasks describes the tasks left in cgroup dir: state, wait channel
// and kernel stack of each (at most 20), to say why they did not die.
func stuckTasks(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out strings.Builder
	for _, f := range []string{"cpu.stat", "freezer.state", "memory.oom_control", "memory.usage_in_bytes", "memory.failcnt", "pids.current", "cgroup.events"} {
		if v, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			fmt.Fprintf(&out, "\n  %s: %s", f, strings.Join(strings.Fields(string(v)), " "))
		}
	}
	for i, f := range strings.Fields(string(b)) {
		if i == 20 {
			out.WriteString("\n  ...")
			break
		}
		status, _ := os.ReadFile("/proc/" + f + "/status")
		var state, name string
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "State:"); ok {
				state = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "Name:"); ok {
				name = strings.TrimSpace(v)
			}
		}
		wchan, _ := os.ReadFile("/proc/" + f + "/wchan")
		stack, _ := os.ReadFile("/proc/" + f + "/stack")
		stat1, _ := os.ReadFile("/proc/" + f + "/stat")
		time.Sleep(100 * time.Millisecond)
		stat2, _ := os.ReadFile("/proc/" + f + "/stat")
		cpu := func(st []byte) string { // utime stime after the command name
			_, rest, _ := strings.Cut(string(st), ") ")
			if fs := strings.Fields(rest); len(fs) > 13 {
				return fs[11] + "+" + fs[12]
			}
			return "?"
		}
		fmt.Fprintf(&out, "\n  pid %s %s %s wchan %s cpu ticks %s then %s\n%s", f, name, state, wchan, cpu(stat1), cpu(stat2), strings.TrimSpace(string(stack)))
	}
	return out.String()
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s answer: %v", resp.Status, err)
	}
}
