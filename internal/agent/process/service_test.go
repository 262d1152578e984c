package process

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

func newClient(t *testing.T, cfg Config) (processconnect.ProcessClient, *Service) {
	t.Helper()
	if cfg.Env == nil {
		cfg.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	}
	svc := New(cfg)
	mux := http.NewServeMux()
	mux.Handle(svc.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return processconnect.NewProcessClient(srv.Client(), srv.URL), svc
}

func startReq(cmd string, args ...string) *connect.Request[pb.StartRequest] {
	return connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: cmd, Args: args}})
}

// collect reads a stream to its end and returns pid, stdout, stderr, pty
// output and the end event.
type result struct {
	pid                 uint32
	stdout, stderr, pty bytes.Buffer
	end                 *pb.ProcessEvent_EndEvent
	keepalives          int
}

type eventStream interface {
	Receive() bool
	Err() error
}

func collect(t *testing.T, s eventStream, event func() *pb.ProcessEvent) *result {
	t.Helper()
	r := &result{}
	for s.Receive() {
		ev := event()
		switch e := ev.GetEvent().(type) {
		case *pb.ProcessEvent_Start:
			r.pid = e.Start.GetPid()
		case *pb.ProcessEvent_Data:
			r.stdout.Write(e.Data.GetStdout())
			r.stderr.Write(e.Data.GetStderr())
			r.pty.Write(e.Data.GetPty())
		case *pb.ProcessEvent_End:
			r.end = e.End
		case *pb.ProcessEvent_Keepalive:
			r.keepalives++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return r
}

func TestStartRunsAndReportsExit(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	req := connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{
		Cmd: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; echo $FOO; pwd; exit 3"},
		Envs: map[string]string{"FOO": "bar"}, Cwd: ptr(os.TempDir()),
	}})
	s, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
	if r.pid == 0 || r.end == nil {
		t.Fatalf("pid %d end %v: want a start and an end event", r.pid, r.end)
	}
	if got, want := r.stdout.String(), "out\nbar\n"+os.TempDir()+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if r.stderr.String() != "err\n" {
		t.Errorf("stderr %q", r.stderr.String())
	}
	if r.end.GetExitCode() != 3 || !r.end.GetExited() || r.end.GetStatus() != "exit status 3" {
		t.Errorf("end %+v, want exit 3", r.end)
	}
}

// Output arrives while the process runs, not at its end.
func TestOutputIsLive(t *testing.T) {
	c, _ := newClient(t, Config{})
	s, err := c.Start(context.Background(), startReq("/bin/sh", "-c", "echo first; sleep 2; echo second"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for s.Receive() {
		if d := s.Msg().GetEvent().GetData(); d != nil && strings.Contains(string(d.GetStdout()), "first") {
			if time.Since(t0) > 1500*time.Millisecond {
				t.Fatalf("first line arrived after %v: output is not streamed", time.Since(t0))
			}
			s.Close()
			return
		}
	}
	t.Fatal("no output")
}

func TestStdinSendAndClose(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	s, err := c.Start(ctx, startReq("/bin/cat"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() {
		t.Fatal(s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	if _, err := c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("hello\n")}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel})); err != nil {
		t.Fatal(err)
	}
	r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
	if r.stdout.String() != "hello\n" || r.end.GetExitCode() != 0 {
		t.Errorf("cat echoed %q, end %+v", r.stdout.String(), r.end)
	}
	// An ended process is kept for Connect only: to input it is gone, as
	// in envd.
	_, err = c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: []byte("x")}}}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("input after end: %v, want not_found", err)
	}
	_, err = c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("close stdin after end: %v, want not_found", err)
	}
}

// A background process keeps running when its client goes away, and a
// client that re-attaches by tag gets the output it missed.
func TestReconnectByTagGetsMissedOutput(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	req := startReq("/bin/sh", "-c", "echo one; sleep 0.5; echo two; sleep 0.5; echo three")
	req.Msg.Tag = ptr("job")
	sctx, cancel := context.WithCancel(ctx)
	s, err := c.Start(sctx, req)
	if err != nil {
		t.Fatal(err)
	}
	s.Receive() // start event
	cancel()    // the client goes away
	s.Close()

	list, err := c.List(ctx, connect.NewRequest(&pb.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 1 || list.Msg.GetProcesses()[0].GetTag() != "job" {
		t.Fatalf("list: %v %v", list, err)
	}
	time.Sleep(700 * time.Millisecond)
	cs, err := c.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "job"}}}))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, cs, func() *pb.ProcessEvent { return cs.Msg().GetEvent() })
	if r.stdout.String() != "one\ntwo\nthree\n" || r.end == nil {
		t.Errorf("re-attached output %q end %v: want everything, including what was missed", r.stdout.String(), r.end)
	}
}

func TestSignalKillsSession(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	s, err := c.Start(ctx, startReq("/bin/sh", "-c", "trap '' TERM; sleep 30 & wait"))
	if err != nil {
		t.Fatal(err)
	}
	s.Receive()
	pid := s.Msg().GetEvent().GetStart().GetPid()
	_, err = c.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_SIGKILL}))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
	if r.end.GetExited() || !strings.Contains(r.end.GetStatus(), "killed") {
		t.Errorf("end %+v, want killed by a signal", r.end)
	}
	_, err = c.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_UNSPECIFIED}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("unspecified signal: %v, want invalid_argument", err)
	}
	// The SDKs' kill reports false for a process that has ended: not_found.
	_, err = c.SendSignal(ctx, connect.NewRequest(&pb.SendSignalRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_SIGKILL}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("signal to an ended process: %v, want not_found", err)
	}
}

func TestPTYAndResize(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	req := startReq("/bin/sh", "-c", "tty; read x; stty size")
	req.Msg.Pty = &pb.PTY{Size: &pb.PTY_Size{Cols: 80, Rows: 24}}
	s, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	s.Receive()
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: s.Msg().GetEvent().GetStart().GetPid()}}
	if _, err := c.Update(ctx, connect.NewRequest(&pb.UpdateRequest{Process: sel, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: 100, Rows: 40}}})); err != nil {
		t.Fatal(err)
	}
	// While the process still waits for input (an ended process is not found).
	if _, err := c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{Process: sel})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("CloseStdin on a terminal: %v, want failed_precondition", err)
	}
	if _, err := c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: []byte("go\n")}}})); err != nil {
		t.Fatal(err)
	}
	r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
	out := r.pty.String()
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "40 100") {
		t.Errorf("terminal output %q: want a /dev/pts name and the new size 40 100", out)
	}
}

func TestBadRequests(t *testing.T) {
	c, _ := newClient(t, Config{})
	ctx := context.Background()
	missing := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: 999999}}
	cases := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"empty cmd", func() error { s, _ := c.Start(ctx, startReq("")); s.Receive(); return s.Err() }, connect.CodeInvalidArgument},
		{"no such binary", func() error { s, _ := c.Start(ctx, startReq("/no/such/binary")); s.Receive(); return s.Err() }, connect.CodeInvalidArgument},
		{"zero pty", func() error {
			r := startReq("/bin/true")
			r.Msg.Pty = &pb.PTY{Size: &pb.PTY_Size{}}
			s, _ := c.Start(ctx, r)
			s.Receive()
			return s.Err()
		}, connect.CodeInvalidArgument},
		{"bad env", func() error {
			r := startReq("/bin/true")
			r.Msg.Process.Envs = map[string]string{"A=B": "c"}
			s, _ := c.Start(ctx, r)
			s.Receive()
			return s.Err()
		}, connect.CodeInvalidArgument},
		{"unknown pid", func() error {
			_, err := c.SendInput(ctx, connect.NewRequest(&pb.SendInputRequest{Process: missing}))
			return err
		}, connect.CodeNotFound},
		{"no selector", func() error {
			_, err := c.CloseStdin(ctx, connect.NewRequest(&pb.CloseStdinRequest{}))
			return err
		}, connect.CodeInvalidArgument},
		{"unknown tag", func() error {
			s, _ := c.Connect(ctx, connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "nope"}}}))
			s.Receive()
			return s.Err()
		}, connect.CodeNotFound},
		{"bad authorization", func() error {
			r := startReq("/bin/true")
			r.Header().Set("Authorization", "Bearer x")
			s, _ := c.Start(ctx, r)
			s.Receive()
			return s.Err()
		}, connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != tc.want || ce.Message() == "" {
				t.Errorf("got %v, want %v with a message", err, tc.want)
			}
		})
	}
}

// A Start deadline (Connect-Timeout-Ms) is the process's deadline, as in
// envd: the stream ends with deadline_exceeded and the process is killed.
// A Connect deadline ends only that stream.
func TestDeadline(t *testing.T) {
	c, _ := newClient(t, Config{KeepAlive: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	req := startReq("/bin/sh", "-c", "echo started; sleep 5 & sleep 5; echo done")
	req.Msg.Tag = ptr("slow")
	s, err := c.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	keepalives := 0
	for s.Receive() {
		if s.Msg().GetEvent().GetKeepalive() != nil {
			keepalives++
		}
	}
	if connect.CodeOf(s.Err()) != connect.CodeDeadlineExceeded {
		t.Fatalf("stream ended with %v, want deadline_exceeded", s.Err())
	}
	if keepalives == 0 {
		t.Error("no keepalive events on an idle stream")
	}
	start := time.Now()
	cs, err := c.Connect(context.Background(), connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: "slow"}}}))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, cs, func() *pb.ProcessEvent { return cs.Msg().GetEvent() })
	// The process went on after the Start stream's deadline.
	if r.stdout.String() != "started\ndone\n" || r.end.GetExitCode() != 0 || time.Since(start) < 3*time.Second {
		t.Errorf("after the deadline: output %q, end %+v after %v; want the process to finish", r.stdout.String(), r.end, time.Since(start))
	}

	// A deadline on Connect leaves the process alone.
	s2, err := c.Start(context.Background(), startReq("/bin/sh", "-c", "sleep 0.6; echo done"))
	if err != nil {
		t.Fatal(err)
	}
	s2.Receive()
	pid := s2.Msg().GetEvent().GetStart().GetPid()
	cctx, ccancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer ccancel()
	cs2, err := c.Connect(cctx, connect.NewRequest(&pb.ConnectRequest{Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}}))
	if err != nil {
		t.Fatal(err)
	}
	for cs2.Receive() {
	}
	if connect.CodeOf(cs2.Err()) != connect.CodeDeadlineExceeded {
		t.Fatalf("connect stream ended with %v, want deadline_exceeded", cs2.Err())
	}
	r2 := collect(t, s2, func() *pb.ProcessEvent { return s2.Msg().GetEvent() })
	if r2.stdout.String() != "done\n" || r2.end.GetExitCode() != 0 {
		t.Errorf("after a Connect deadline the process must go on: %q %+v", r2.stdout.String(), r2.end)
	}
}

func kept(o *output) int {
	cs, _, _, _ := o.read(0)
	n := 0
	for _, c := range cs {
		n += len(c.data)
	}
	return n
}

func TestOutputHistoryIsBounded(t *testing.T) {
	o := newOutput(10, nil)
	for i := 0; i < 100; i++ {
		o.append(streamStdout, []byte("abcd"))
	}
	_, next, _, _ := o.read(0)
	if total := kept(o); total > 12 || next != 100 {
		t.Errorf("kept %d bytes (next %d): the history must stay near its 10-byte budget", total, next)
	}
}

// The histories of all processes together stay within the service's
// budget: the process writing loses its own oldest output, a quiet one
// keeps its history, and a forgotten one gives its bytes back.
func TestOutputBudgetIsShared(t *testing.T) {
	b := &budget{max: 100}
	quiet, loud := newOutput(80, b), newOutput(80, b)
	for range 10 {
		quiet.append(streamStdout, []byte("0123456789"))
	}
	for range 100 {
		loud.append(streamStdout, []byte("abcdefghij"))
	}
	if q, l, used := kept(quiet), kept(loud), b.used.Load(); q != 80 || l > 20 || used > 100 || used != int64(q+l) {
		t.Errorf("quiet kept %d, loud %d, budget used %d: want 80, at most 20, at most 100 and their sum", q, l, used)
	}
	// A reader that had followed the quiet history part-way reads on
	// after the release: nothing more, and no bad position.
	_, mid, _, _ := quiet.read(0)
	quiet.release()
	if cs, next, _, _ := quiet.read(mid - 2); len(cs) != 0 || next != mid {
		t.Errorf("read after release: %d chunks, next %d; want none, %d", len(cs), next, mid)
	}
	for range 10 {
		loud.append(streamStdout, []byte("abcdefghij"))
	}
	if l, used := kept(loud), b.used.Load(); l != 80 || used != 80 {
		t.Errorf("after the quiet history was released: loud kept %d, budget used %d, want 80 and 80", l, used)
	}
}

func ptr[T any](v T) *T { return &v }

func TestSetEnv(t *testing.T) {
	svc := New(Config{Env: []string{"PATH=/usr/bin:/bin", "A=base"}})
	if err := svc.SetEnv(map[string]string{"A": "init", "B": "two"}); err != nil {
		t.Fatal(err)
	}
	got := svc.baseEnv()
	if want := []string{"PATH=/usr/bin:/bin", "A=base", "A=init", "B=two"}; !slices.Equal(got, want) {
		t.Fatalf("baseEnv = %v, want %v", got, want)
	}
	for _, bad := range []map[string]string{{"": "x"}, {"X=Y": "x"}, {"X": "a\x00b"}} {
		if svc.SetEnv(bad) == nil {
			t.Errorf("SetEnv(%q) accepted", bad)
		}
	}
}

func TestKeepAliveFor(t *testing.T) {
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 50 * time.Second},
		{"10", 10 * time.Second},
		{"50", 50 * time.Second},
		{"3600", 50 * time.Second}, // never longer than the agent's own
		{"0", 50 * time.Second},
		{"-3", 50 * time.Second},
		{"1.5", 50 * time.Second},
	} {
		h := http.Header{}
		if c.header != "" {
			h.Set(KeepAliveHeader, c.header)
		}
		if got := keepAliveFor(h, 50*time.Second); got != c.want {
			t.Errorf("keepAliveFor(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

// A client asking for keepalives every second gets them on an idle stream.
func TestKeepAliveHeader(t *testing.T) {
	c, _ := newClient(t, Config{})
	req := startReq("/bin/sleep", "2.5")
	req.Header().Set(KeepAliveHeader, "1")
	s, err := c.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	keepalives := 0
	for s.Receive() {
		if s.Msg().GetEvent().GetKeepalive() != nil {
			keepalives++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if keepalives < 2 {
		t.Errorf("%d keepalives in 2.5 s at 1 s intervals, want at least 2", keepalives)
	}
}

// The processes the agent starts, with pipes or a PTY, are the OOM
// killer's first choice (oom_score_adj 1000); the agent keeps its own value.
func TestChildrenAreOOMVictimsFirst(t *testing.T) {
	before, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, Config{})
	for _, pty := range []bool{false, true} {
		// The value is raised just after the start: read it a little later
		// (cat inherits it from the shell).
		req := startReq("/bin/sh", "-c", "sleep 0.2; cat /proc/self/oom_score_adj")
		if pty {
			req.Msg.Pty = &pb.PTY{Size: &pb.PTY_Size{Cols: 80, Rows: 24}}
		}
		s, err := c.Start(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
		got := strings.TrimSpace(r.stdout.String() + r.pty.String())
		if got != "1000" {
			t.Errorf("pty %v: the child's oom_score_adj is %q, want 1000", pty, got)
		}
	}
	if after, err := os.ReadFile("/proc/self/oom_score_adj"); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the agent's oom_score_adj: %q before, %q after (%v)", before, after, err)
	}
}

// Output already in the pipes when the drain grace runs out is kept: with
// no grace at all, and a background child holding the pipes open, every
// run still reports what the process wrote, and the end is not held back
// by the child.
func TestOutputKeptWhenGraceRunsOut(t *testing.T) {
	saved := drainGrace
	drainGrace = 0
	t.Cleanup(func() { drainGrace = saved })
	c, _ := newClient(t, Config{})
	for i := range 20 {
		s, err := c.Start(context.Background(), startReq("/bin/sh", "-c", "sleep 5 & echo out; echo err >&2"))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		r := collect(t, s, func() *pb.ProcessEvent { return s.Msg().GetEvent() })
		if r.stdout.String() != "out\n" || r.stderr.String() != "err\n" {
			t.Fatalf("run %d: stdout %q stderr %q, want out and err", i, r.stdout.String(), r.stderr.String())
		}
		if d := time.Since(t0); d > 4*time.Second {
			t.Fatalf("run %d: the end took %v: the background child held it back", i, d)
		}
		if r.end.GetExitCode() != 0 {
			t.Fatalf("run %d: end %+v", i, r.end)
		}
	}
}
