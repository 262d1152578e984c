package runtime

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/nsinit"
)

func exited(code int) nsinit.Event { return nsinit.Event{Kind: nsinit.EventExit, Status: code << 8} }
func signaled(s unix.Signal) nsinit.Event {
	return nsinit.Event{Kind: nsinit.EventExit, Status: int(s)}
}

func TestClassify(t *testing.T) {
	l := limits.Defaults()
	cases := []struct {
		name     string
		reason   killReason
		exit     nsinit.Event
		gotExit  bool
		cpu      time.Duration
		oom      int64
		want     Status
		wantCode int
	}{
		{"ok", notKilled, exited(0), true, 0, 0, StatusOK, 0},
		{"nonzero", notKilled, exited(3), true, 0, 0, StatusRE, 3},
		{"segv", notKilled, signaled(unix.SIGSEGV), true, 0, 0, StatusSG, 139},
		{"wall", killedWall, nsinit.Event{}, false, 0, 0, StatusTLE, 137},
		{"cpu watcher", killedCPU, nsinit.Event{}, false, 0, 0, StatusTLE, 137},
		{"cpu used up at exit", notKilled, exited(0), true, l.CPUTime, 0, StatusTLE, 0},
		{"sigxcpu", notKilled, signaled(unix.SIGXCPU), true, 0, 0, StatusTLE, 128 + 24},
		{"output", killedOutput, nsinit.Event{}, false, 0, 0, StatusOLE, 137},
		{"oom killed", notKilled, signaled(unix.SIGKILL), true, 0, 1, StatusMLE, 137},
		{"oom but exited 0", notKilled, exited(0), true, 0, 1, StatusOK, 0},
		{"init oom-killed", notKilled, nsinit.Event{}, false, 0, 2, StatusMLE, 137},
		{"init vanished", notKilled, nsinit.Event{}, false, 0, 0, StatusXX, 137},
		{"sigxfsz", notKilled, signaled(unix.SIGXFSZ), true, 0, 0, StatusFSE, 128 + 25},
		{"disk full and failed", notKilled, nsinit.Event{Kind: nsinit.EventExit, Status: 1 << 8, DiskFull: true}, true, 0, 0, StatusFSE, 1},
		{"disk full but fine", notKilled, nsinit.Event{Kind: nsinit.EventExit, DiskFull: true}, true, 0, 0, StatusOK, 0},
		{"seccomp kill", notKilled, signaled(unix.SIGSYS), true, 0, 0, StatusSV, 128 + 31},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Result{CPU: tc.cpu, OOMKills: tc.oom}
			classify(r, tc.reason, tc.exit, tc.gotExit, l)
			if r.Status != tc.want || r.ExitCode != tc.wantCode {
				t.Errorf("got %s exit %d, want %s exit %d", r.Status, r.ExitCode, tc.want, tc.wantCode)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	r := &Result{
		Status: StatusSG, ExitCode: 137, Signal: unix.SIGKILL,
		Stdout: []byte("a\xff\x00\"\\\n\u2028z"), Stderr: []byte("é"), StdoutTruncated: true,
		Wall: 1500 * time.Microsecond, CPU: 2 * time.Millisecond, PeakMemory: 4096,
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("want one object on one line, got %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("invalid JSON %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"status": "SG", "exit_code": 137.0, "signal": "SIGKILL", "stdout": "a\ufffd\x00\"\\\n\u2028z",
		"stderr": "é", "stdout_truncated": true, "stderr_truncated": false, "wall_ms": 1.5, "cpu_ms": 2.0,
		"peak_memory_bytes": 4096.0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want exactly %d: %v", len(got), len(want), got)
	}
	r.Signal = 0
	buf.Reset()
	r.WriteJSON(&buf)
	if !strings.Contains(buf.String(), `"signal":null`) {
		t.Errorf("exited run must have signal null: %s", buf.String())
	}
}

func FuzzWriteJSON(f *testing.F) {
	f.Add([]byte("hello\n"), []byte{0xff, 0, 0x7f})
	f.Fuzz(func(t *testing.T, out, errb []byte) {
		var buf bytes.Buffer
		(&Result{Status: StatusOK, Stdout: out, Stderr: errb}).WriteJSON(&buf)
		var got struct{ Stdout, Stderr string }
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("invalid JSON for %q/%q: %v", out, errb, err)
		}
		for _, c := range []struct {
			in  []byte
			got string
		}{{out, got.Stdout}, {errb, got.Stderr}} {
			if utf8.Valid(c.in) && c.got != string(c.in) {
				t.Fatalf("valid UTF-8 %q round-tripped to %q", c.in, c.got)
			}
			if !utf8.Valid(c.in) && utf8.RuneCountInString(c.got) != countRunesByteWise(c.in) {
				t.Fatalf("%q: each invalid byte must become one U+FFFD, got %q", c.in, c.got)
			}
		}
	})
}

// countRunesByteWise counts runes with every invalid byte counted as one.
func countRunesByteWise(b []byte) int {
	n := 0
	for len(b) > 0 {
		_, size := utf8.DecodeRune(b)
		b = b[size:]
		n++
	}
	return n
}

func TestCgroupNames(t *testing.T) {
	for _, n := range []cgName{{kind: kindRun, instance: "d0c0ffee", slot: 42, id: "abc123"}, {kind: kindSandbox, instance: "d0c0ffee", slot: 7, id: "abc123"}} {
		got, ok := parseCgroupName(n.String())
		if !ok || got != n {
			t.Errorf("parseCgroupName(%q) = %+v, %v", n.String(), got, ok)
		}
	}
	for _, bad := range []string{"run-x-1", "other-1-2", "run-5", "run-5-", "run-5-abc", "sbx-5-abc", "sbx--5-abc", "sbx-i-5-", "sbx-i-x-abc", "run--1-a", "run-i--1-a", "sbx-i-1-a-b"} {
		if n, ok := parseCgroupName(bad); ok {
			t.Errorf("parseCgroupName(%q) accepted: %+v", bad, n)
		}
	}
}
