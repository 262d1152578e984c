package soulbox_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

func basic(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}

func TestRunRequestAndHeaders(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	cases := []struct {
		name     string
		opts     []soulbox.CommandOption
		wantUser string
		wantOut  string
	}{
		{"default user", nil, "user", "user\n/home/user\n"},
		{"root in /tmp", []soulbox.CommandOption{soulbox.WithUser("root"), soulbox.WithCwd("/tmp")}, "root", "root\n/tmp\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := append([]soulbox.CommandOption{soulbox.WithEnv(map[string]string{"GREETING": "hi"})}, tc.opts...)
			res, err := sbx.Commands.Run(t.Context(), "whoami; pwd", opts...)
			if err != nil {
				t.Fatal(err)
			}
			if res.Stdout != tc.wantOut || res.ExitCode != 0 {
				t.Errorf("result = %+v, want stdout %q", res, tc.wantOut)
			}
			req, ok := fake.LastRequest("/process.Process/Start")
			if !ok {
				t.Fatal("no Start call")
			}
			for h, want := range map[string]string{
				"E2b-Sandbox-Id":          sbx.ID,
				"E2b-Sandbox-Port":        "49983",
				"X-Access-Token":          fake.AccessToken(sbx.ID),
				"Authorization":           basic(tc.wantUser),
				"Keepalive-Ping-Interval": "50",
			} {
				if got := req.Header.Get(h); got != want {
					t.Errorf("header %s = %q, want %q", h, got, want)
				}
			}
			if req.Header.Get("X-API-Key") != "" {
				t.Error("the API key must not travel to the sandbox's agent")
			}
			msg := req.Msg.(*pb.StartRequest)
			if msg.GetProcess().GetCmd() != "/bin/bash" || !slices.Equal(msg.GetProcess().GetArgs(), []string{"-l", "-c", "whoami; pwd"}) {
				t.Errorf("process = %v", msg.GetProcess())
			}
			if msg.Stdin == nil || msg.GetStdin() {
				t.Errorf("stdin = %v, want explicit false", msg.Stdin)
			}
			if msg.GetProcess().GetEnvs()["GREETING"] != "hi" {
				t.Errorf("envs = %v", msg.GetProcess().GetEnvs())
			}
		})
	}
}

func TestRunResultAndExitError(t *testing.T) {
	_, _, sbx := newTestSandbox(t)
	res, err := sbx.Commands.Run(t.Context(), "echo out; echo err >&2")
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "out\n" || res.Stderr != "err\n" || res.ExitCode != 0 {
		t.Errorf("result = %+v", res)
	}

	res, err = sbx.Commands.Run(t.Context(), "echo partial; exit 3")
	var exit *soulbox.CommandExitError
	if !errors.As(err, &exit) {
		t.Fatalf("err = %v, want *CommandExitError", err)
	}
	if exit.ExitCode() != 3 || exit.Result.Stdout != "partial\n" || res != exit.Result {
		t.Errorf("exit error = %+v, result %+v", exit.Result, res)
	}
	if !strings.Contains(err.Error(), "code 3") {
		t.Errorf("message = %q", err)
	}

	if _, err := sbx.Commands.StartArgv(t.Context(), nil); !errors.Is(err, soulbox.ErrInvalid) {
		t.Errorf("empty argv: err = %v", err)
	}
}

func TestOutputStreamsBeforeEnd(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	got := make(chan string, 10)
	h, err := sbx.Commands.Start(ctx, "echo first; echo second >&2; sleep 30",
		soulbox.WithOnStdout(func(b []byte) { got <- "out:" + string(b) }),
		soulbox.WithOnStderr(func(b []byte) { got <- "err:" + string(b) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	if h.PID() == 0 {
		t.Error("PID = 0")
	}
	for _, want := range []string{"out:first\n", "err:second\n"} {
		select {
		case s := <-got:
			if s != want {
				t.Errorf("callback got %q, want %q", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %q before the process ended", want)
		}
	}
	select {
	case <-h.Done():
		t.Fatal("the handle ended while the process sleeps")
	default:
	}
	if err := h.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := h.Wait(ctx)
	var exit *soulbox.CommandExitError
	if !errors.As(err, &exit) || res.ExitCode != -1 || res.Error != "signal: killed" {
		t.Errorf("after Kill: result %+v, err %v", res, err)
	}
	req, _ := fake.LastRequest("/process.Process/SendSignal")
	if sig := req.Msg.(*pb.SendSignalRequest); sig.GetSignal() != pb.Signal_SIGNAL_SIGKILL || sig.GetProcess().GetPid() != h.PID() {
		t.Errorf("SendSignal = %v", sig)
	}
	// Wait can be called again.
	if res2, _ := h.Wait(ctx); res2.Stdout != "first\n" {
		t.Errorf("second Wait stdout = %q", res2.Stdout)
	}
}

func TestStdin(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	h, err := sbx.Commands.Start(ctx, "cat", soulbox.WithStdin())
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"hello ", "world\n"} {
		if err := h.SendStdin(ctx, []byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := h.Wait(ctx)
	if err != nil || res.Stdout != "hello world\n" {
		t.Errorf("cat = %+v, %v", res, err)
	}
	req, _ := fake.LastRequest("/process.Process/Start")
	if !req.Msg.(*pb.StartRequest).GetStdin() {
		t.Error("WithStdin did not ask for stdin")
	}
}

func TestTimeoutKills(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	start := time.Now()
	res, err := sbx.Commands.Run(t.Context(), "echo started; sleep 30", soulbox.WithTimeout(200*time.Millisecond))
	if !errors.Is(err, soulbox.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	if res == nil || res.Stdout != "started\n" {
		t.Errorf("result = %+v", res)
	}
	req, ok := fake.LastRequest("/process.Process/SendSignal")
	if !ok || req.Msg.(*pb.SendSignalRequest).GetSignal() != pb.Signal_SIGNAL_SIGKILL {
		t.Error("the timed-out process was not killed")
	}
}

func TestConnectListAndSignal(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	printed := make(chan struct{})
	var once sync.Once
	first, err := sbx.Commands.Start(ctx, "echo a; sleep 30", soulbox.WithTag("svc"), soulbox.WithTimeout(0),
		soulbox.WithOnStdout(func([]byte) { once.Do(func() { close(printed) }) }))
	if err != nil {
		t.Fatal(err)
	}
	<-printed // the program runs asynchronously to Start
	procs, err := sbx.Commands.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 || procs[0].PID != first.PID() || procs[0].Tag != "svc" || procs[0].Cmd != "/bin/bash" {
		t.Errorf("List = %+v", procs)
	}

	var mu sync.Mutex
	var replay bytes.Buffer
	second, err := sbx.Commands.ConnectTag(ctx, "svc", soulbox.WithOnStdout(func(b []byte) {
		mu.Lock()
		replay.Write(b)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if second.PID() != first.PID() {
		t.Errorf("ConnectTag pid = %d, want %d", second.PID(), first.PID())
	}
	if err := sbx.Commands.Signal(ctx, first.PID(), soulbox.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*soulbox.CommandHandle{first, second} {
		res, err := h.Wait(ctx)
		var exit *soulbox.CommandExitError
		if !errors.As(err, &exit) || res.Error != "signal: terminated" || res.Stdout != "a\n" {
			t.Errorf("Wait = %+v, %v", res, err)
		}
	}
	mu.Lock()
	if replay.String() != "a\n" {
		t.Errorf("replayed output = %q", replay.String())
	}
	mu.Unlock()
	req, _ := fake.LastRequest("/process.Process/SendSignal")
	if req.Msg.(*pb.SendSignalRequest).GetSignal() != pb.Signal_SIGNAL_SIGTERM {
		t.Error("SIGTERM not sent")
	}
	if err := sbx.Commands.Signal(ctx, first.PID(), soulbox.Signal(2)); !errors.Is(err, soulbox.ErrInvalid) {
		t.Errorf("SIGINT: err = %v, want ErrInvalid", err)
	}
	if _, err := sbx.Commands.Connect(ctx, 4242); !errors.Is(err, soulbox.ErrNotFound) {
		t.Errorf("Connect unknown pid: err = %v", err)
	}
}

func TestWaitContext(t *testing.T) {
	_, _, sbx := newTestSandbox(t)
	h, err := sbx.Commands.Start(t.Context(), "sleep 30", soulbox.WithTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout(t, 50*time.Millisecond)
	defer cancel()
	if _, err := h.Wait(ctx); !errors.Is(err, ctx.Err()) || ctx.Err() == nil {
		t.Errorf("Wait = %v, want the context's error", err)
	}
	h.Disconnect()
	if _, err := h.Wait(t.Context()); err == nil {
		t.Error("Wait after Disconnect succeeded")
	}
	// The process still runs: Disconnect does not kill.
	procs, _ := sbx.Commands.List(t.Context())
	if len(procs) != 1 {
		t.Errorf("processes after Disconnect = %+v", procs)
	}
}

func TestPTY(t *testing.T) {
	fake, _, sbx := newTestSandbox(t)
	ctx := t.Context()
	var mu sync.Mutex
	var screen bytes.Buffer
	term, err := sbx.PTY.Create(ctx, soulbox.PTYOptions{
		Cols: 100, Rows: 30, User: "root",
		OnData: func(b []byte) {
			mu.Lock()
			screen.Write(b)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := fake.LastRequest("/process.Process/Start")
	start := req.Msg.(*pb.StartRequest)
	if size := start.GetPty().GetSize(); size.GetCols() != 100 || size.GetRows() != 30 {
		t.Errorf("pty size = %v", size)
	}
	if start.GetProcess().GetCmd() != "/bin/bash" || !slices.Equal(start.GetProcess().GetArgs(), []string{"-i", "-l"}) ||
		start.GetProcess().GetEnvs()["TERM"] != "xterm-256color" || req.Header.Get("Authorization") != basic("root") {
		t.Errorf("start = %v, auth %q", start, req.Header.Get("Authorization"))
	}

	if err := term.Resize(ctx, 120, 40); err != nil {
		t.Fatal(err)
	}
	req, _ = fake.LastRequest("/process.Process/Update")
	if size := req.Msg.(*pb.UpdateRequest).GetPty().GetSize(); size.GetCols() != 120 || size.GetRows() != 40 {
		t.Errorf("resize = %v", size)
	}
	if err := term.Resize(ctx, 0, 40); !errors.Is(err, soulbox.ErrInvalid) {
		t.Errorf("Resize 0: %v", err)
	}
	if err := term.SendInput(ctx, []byte("whoami\r")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(screen.String(), "root\r\n")
	})
	if err := term.SendInput(ctx, []byte("exit 5\r")); err != nil {
		t.Fatal(err)
	}
	res, err := term.Wait(ctx)
	var exit *soulbox.CommandExitError
	if !errors.As(err, &exit) || res.ExitCode != 5 {
		t.Errorf("Wait = %+v, %v; want exit 5", res, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
