package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxtest"
)

func newFakeSandbox(t *testing.T) (*soulboxtest.FakeServer, string) {
	t.Helper()
	fake := soulboxtest.NewFakeServer(t)
	res := runCLI(t, fake, "", "sandbox", "create")
	if res.code != 0 {
		t.Fatalf("create: %d %s", res.code, res.stderr)
	}
	return fake, lastLine(res.stdout)
}

func TestExec(t *testing.T) {
	fake, id := newFakeSandbox(t)
	cases := []struct {
		name           string
		stdin          string
		args           []string
		code           int
		stdout, stderr string
		wantCmd        string
		wantArgs       []string
	}{
		{name: "argv without shell", args: []string{id, "--", "echo", "a b", "c"}, stdout: "a b c\n", wantCmd: "echo", wantArgs: []string{"a b", "c"}},
		{name: "no dashes", args: []string{id, "echo", "-n"}, stdout: "-n\n", wantCmd: "echo", wantArgs: []string{"-n"}},
		{name: "exit code and stderr", args: []string{id, "--", "/bin/bash", "-c", "echo out; echo err >&2; exit 4"}, code: 4, stdout: "out\n", stderr: "err\n"},
		{name: "stdin forwarded", stdin: "line 1\nline 2\n", args: []string{id, "--", "cat"}, stdout: "line 1\nline 2\n"},
		{name: "user and cwd", args: []string{"--user", "root", "--cwd", "/tmp", "--env", "A=1", id, "--", "/bin/bash", "-c", "whoami; pwd; printenv A"}, stdout: "root\n/tmp\n1\n"},
		{name: "command not found", args: []string{id, "--", "nope"}, code: 127, stderr: "toy: nope: command not found\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, fake, tc.stdin, append([]string{"exec"}, tc.args...)...)
			if res.code != tc.code || res.stdout != tc.stdout || res.stderr != tc.stderr {
				t.Errorf("exit %d stdout %q stderr %q; want %d %q %q", res.code, res.stdout, res.stderr, tc.code, tc.stdout, tc.stderr)
			}
			if tc.wantCmd != "" {
				req, _ := fake.LastRequest("/process.Process/Start")
				p := req.Msg.(*pb.StartRequest).GetProcess()
				if p.GetCmd() != tc.wantCmd || !slices.Equal(p.GetArgs(), tc.wantArgs) {
					t.Errorf("started %q %q, want %q %q", p.GetCmd(), p.GetArgs(), tc.wantCmd, tc.wantArgs)
				}
			}
		})
	}

	res := runCLI(t, fake, "", "exec", "nosuch", "--", "true")
	if res.code != exitFailure || !strings.Contains(res.stderr, "sandbox nosuch") || !strings.Contains(res.stderr, "not found") {
		t.Errorf("unknown sandbox: %d %q", res.code, res.stderr)
	}
}

func TestRemoteExit(t *testing.T) {
	cases := []struct {
		res  soulbox.CommandResult
		want int
	}{
		{soulbox.CommandResult{ExitCode: 3}, 3},
		{soulbox.CommandResult{ExitCode: 255}, 255},
		{soulbox.CommandResult{ExitCode: -1, Error: "signal: killed"}, 137},
		{soulbox.CommandResult{ExitCode: -1, Error: "signal: terminated"}, 143},
		{soulbox.CommandResult{ExitCode: -1, Error: "signal: user defined signal 1"}, exitFailure},
		{soulbox.CommandResult{ExitCode: -1, Error: "agent lost the process"}, exitFailure},
	}
	for _, tc := range cases {
		res := tc.res
		err := remoteExit(&res, &soulbox.CommandExitError{Result: &res})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != tc.want {
			t.Errorf("remoteExit(%+v) = %v, want exit %d", tc.res, err, tc.want)
		}
	}
	if err := remoteExit(&soulbox.CommandResult{}, nil); err != nil {
		t.Errorf("remoteExit(success) = %v", err)
	}
	other := errors.New("stream broke")
	if err := remoteExit(nil, other); err != other {
		t.Errorf("remoteExit(other) = %v", err)
	}
}
