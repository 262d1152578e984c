package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/soulbox-dev/soulbox/sdk/go/soulboxtest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of
// streaming callbacks and reads by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliResult is the outcome of one CLI run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI against a fake daemon (through the environment, as
// a user would configure it).
func runCLI(t *testing.T, fake *soulboxtest.FakeServer, stdin string, args ...string) cliResult {
	t.Helper()
	t.Setenv("E2B_API_KEY", "")
	t.Setenv("E2B_API_URL", "")
	if fake != nil {
		t.Setenv("SOULBOX_URL", fake.URL)
		t.Setenv("SOULBOX_API_KEY", fake.APIKey)
	} else {
		t.Setenv("SOULBOX_URL", "http://127.0.0.1:1")
		t.Setenv("SOULBOX_API_KEY", "sb_0000000000000000000000000000000000000000")
	}
	var stdout, stderr syncBuffer
	code := Main(args, strings.NewReader(stdin), &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"bad timeout", []string{"sandbox", "create", "--timeout", "soon"}, "--timeout"},
		{"negative timeout", []string{"sandbox", "create", "--timeout", "-5s"}, "--timeout"},
		{"bad memory", []string{"sandbox", "create", "--memory", "12Q"}, "--memory"},
		{"memory not MiB", []string{"sandbox", "create", "--memory", "100K"}, "whole number of MiB"},
		{"bad disk", []string{"sandbox", "create", "--disk", "big"}, "--disk"},
		{"bad cpus", []string{"sandbox", "create", "--cpus", "-1"}, "--cpus"},
		{"bad pids", []string{"sandbox", "create", "--pids", "many"}, "--pids"},
		{"metadata without =", []string{"sandbox", "create", "--metadata", "owner"}, "KEY=VALUE"},
		{"env without key", []string{"sandbox", "create", "--env", "=x"}, "KEY=VALUE"},
		{"unknown flag", []string{"sandbox", "create", "--nope"}, "unknown flag"},
		{"sandbox without subcommand", []string{"sandbox"}, "subcommand"},
		{"bad state", []string{"sandbox", "ls", "--state", "dead"}, "running or paused"},
		{"bad ls metadata", []string{"sandbox", "ls", "--metadata", "x"}, "KEY=VALUE"},
		{"info without id", []string{"sandbox", "info"}, "accepts 1 arg"},
		{"bad id", []string{"sandbox", "info", "a/b"}, "not a sandbox id"},
		{"kill without id", []string{"sandbox", "kill"}, "requires at least 1 arg"},
		{"bad resume timeout", []string{"sandbox", "resume", "abc", "--timeout", "x"}, "--timeout"},
		{"bad duration", []string{"sandbox", "timeout", "abc", "soon"}, "duration"},
		{"exec without command", []string{"exec", "abc"}, "requires at least 2 arg"},
		{"exec only dashes", []string{"exec", "abc", "--"}, "needs a command"},
		{"exec bad env", []string{"exec", "--env", "X", "abc", "--", "true"}, "KEY=VALUE"},
		{"cp both local", []string{"cp", "a", "b"}, "exactly one"},
		{"cp both remote", []string{"cp", "abc:/a", "abc:/b"}, "exactly one"},
		{"cp empty remote path", []string{"cp", "a", "abc:"}, "empty sandbox path"},
		{"files ls bad depth", []string{"files", "ls", "abc", "--depth", "0"}, "--depth"},
		{"files watch one arg", []string{"files", "watch", "abc"}, "accepts 2 arg"},
		{"shell without terminal", []string{"shell", "abc"}, "needs a terminal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, nil, "", tc.args...)
			if res.code != exitUsage {
				t.Errorf("exit = %d, want %d (stderr %q)", res.code, exitUsage, res.stderr)
			}
			if !strings.Contains(res.stderr, tc.want) || !strings.HasPrefix(res.stderr, "soulbox: ") {
				t.Errorf("stderr = %q, want soulbox: ...%s...", res.stderr, tc.want)
			}
		})
	}
}

func TestMissingAPIKey(t *testing.T) {
	t.Setenv("SOULBOX_API_KEY", "")
	t.Setenv("E2B_API_KEY", "")
	var stdout, stderr bytes.Buffer
	if code := Main([]string{"sandbox", "ls"}, strings.NewReader(""), &stdout, &stderr); code != exitUsage {
		t.Errorf("exit = %d, want %d", code, exitUsage)
	}
	if !strings.Contains(stderr.String(), "SOULBOX_API_KEY") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestUnreachableDaemon(t *testing.T) {
	res := runCLI(t, nil, "", "sandbox", "ls")
	if res.code != exitFailure || !strings.Contains(res.stderr, "soulbox: list sandboxes") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestWrongAPIKey(t *testing.T) {
	fake := soulboxtest.NewFakeServer(t)
	res := runCLI(t, fake, "", "sandbox", "ls", "--api-key", "sb_wrong")
	if res.code != exitFailure || !strings.Contains(res.stderr, "401") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}
