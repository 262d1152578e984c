package doctor

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// skipOrFail skips the test, naming what is missing, except under CI
// (CI=true), where a missing prerequisite is a failure.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (euid %d)", os.Geteuid())
	}
}

// TestRunOnHost runs the real checks: the development and CI hosts must
// pass every required one.
func TestRunOnHost(t *testing.T) {
	requireRoot(t)
	res := RunChecks(Checks())
	for _, r := range res {
		if r.Check.Required && r.Status != OK {
			t.Errorf("required check %q: %s: %s", r.Check.Name, r.Status, r.Detail)
		}
	}
	var buf bytes.Buffer
	if ok := Run(&buf); !ok {
		t.Errorf("Run() = false, want true; output:\n%s", &buf)
	}
	if got, want := strings.Count(buf.String(), "\n"), len(res)+2; got < want {
		t.Errorf("Run() wrote %d lines, want at least %d:\n%s", got, want, &buf)
	}
	t.Logf("doctor output:\n%s", &buf)
}

func TestChecksAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Checks() {
		if c.Name == "" || c.Probe == nil {
			t.Errorf("check %+v lacks a name or a probe", c)
		}
		if seen[c.Name] {
			t.Errorf("duplicate check %q", c.Name)
		}
		seen[c.Name] = true
		if c.Required && c.Fix == "" {
			t.Errorf("required check %q has no fix hint", c.Name)
		}
	}
}

func fixed(ok bool, detail string) func() (bool, string) {
	return func() (bool, string) { return ok, detail }
}

func TestReport(t *testing.T) {
	tests := []struct {
		name      string
		checks    []Check
		wantReady bool
		want      string
	}{
		{
			name: "all pass",
			checks: []Check{
				{Name: "a", Required: true, Fix: "fix a", Probe: fixed(true, "fine")},
				{Name: "longer name", Probe: fixed(true, "also fine")},
			},
			wantReady: true,
			want: "OK  a            fine\n" +
				"OK  longer name  also fine\n" +
				"\n2 checks: 2 ok, 0 warning(s), 0 missing; ready to run sandboxes\n",
		},
		{
			name: "optional failure warns",
			checks: []Check{
				{Name: "a", Required: true, Fix: "fix a", Probe: fixed(true, "fine")},
				{Name: "opt", Fix: "fix opt", Probe: fixed(false, "absent")},
			},
			wantReady: true,
			want: "OK    a    fine\n" +
				"WARN  opt  absent\n" +
				"           fix: fix opt\n" +
				"\n2 checks: 1 ok, 1 warning(s), 0 missing; ready to run sandboxes\n",
		},
		{
			name: "required failure",
			checks: []Check{
				{Name: "root", Required: true, Fix: "run as\nroot", Probe: fixed(false, "uid 1000")},
				{Name: "b", Probe: fixed(true, "ok")},
			},
			wantReady: false,
			want: "MISSING  root  uid 1000\n" +
				"               fix: run as root\n" +
				"OK       b     ok\n" +
				"\n2 checks: 1 ok, 0 warning(s), 1 missing; NOT ready: fix the MISSING checks above\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := RunChecks(tt.checks)
			if got := Ready(res); got != tt.wantReady {
				t.Errorf("Ready() = %v, want %v", got, tt.wantReady)
			}
			var buf bytes.Buffer
			if err := Report(&buf, res); err != nil {
				t.Fatalf("Report: %v", err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("Report output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{OK: "OK", Warn: "WARN", Missing: "MISSING", 9: "Status(9)"} {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}
