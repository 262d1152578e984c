package quickrun

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/result"
)

func TestParse(t *testing.T) {
	r, ok := parse([]string{"--json", "--memory", "64M", "--timeout=2s", "--env", "A=1", "--env=B=2",
		"--data-dir", "/d", "--stdin=in.txt", "--", "sh", "-c", "echo --json"})
	if !ok {
		t.Fatal("refused a request it should take")
	}
	want := limits.Defaults()
	want.MemoryBytes, want.WallTime = 64<<20, 2*time.Second
	if !r.asJSON || r.limits != want || !slices.Equal(r.env, []string{"A=1", "B=2"}) ||
		r.dataDir != "/d" || r.stdin != "in.txt" || !slices.Equal(r.argv, []string{"sh", "-c", "echo --json"}) {
		t.Fatalf("parsed %+v", r)
	}
	if r, ok := parse([]string{"--json=false", "--", "true"}); !ok || r.asJSON || r.dataDir != DefaultDataDir {
		t.Fatalf("--json=false: %+v %v", r, ok)
	}
	// Everything else is the full command line's to answer.
	for _, args := range [][]string{
		{"true"},                        // no "--"
		{"--"},                          // no command
		{"--help", "--", "true"},        // help
		{"-m", "1G", "--", "true"},      // short or unknown flags
		{"--no-pool", "--", "true"},     // its own set-up
		{"--copy-in", "a=b", "--", "x"}, // files
		{"--lang", "python", "--", "x"},
		{"--egress-allow", "1.1.1.1", "--", "x"},
		{"--memory", "lots", "--", "true"}, // a value the limits refuse
		{"--memory"},                       // no value
		{"--json=maybe", "--", "true"},
	} {
		if _, ok := parse(args); ok {
			t.Errorf("took %q", args)
		}
	}
}

func TestMainLeavesOtherCommands(t *testing.T) {
	for _, argv := range [][]string{{"soulbox"}, {"soulbox", "serve"}, {"soulbox-init"}, {"soulbox", "run", "--help"}} {
		code, next := Main(argv, nil, nil, nil)
		if code != 0 || !slices.Equal(next, argv) {
			t.Errorf("%q: code %d, next %q", argv, code, next)
		}
	}
	// No daemon at this data directory: the run goes to the full command
	// line, which must not ask the pool again.
	argv := []string{"soulbox", "run", "--data-dir", t.TempDir(), "--", "true"}
	code, next := Main(argv, nil, nil, nil)
	if want := []string{"soulbox", "run", "--no-pool", argv[2], argv[3], "--", "true"}; code != 0 || !slices.Equal(next, want) {
		t.Errorf("cold: code %d, next %q, want %q", code, next, want)
	}
}

func TestReport(t *testing.T) {
	var out, errOut bytes.Buffer
	res := &result.Result{Status: result.StatusTLE, ExitCode: 137}
	if code := Report(&out, &errOut, res, false); code != 137 || out.Len() != 0 ||
		!strings.Contains(errOut.String(), "time limit exceeded (TLE)") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := Report(&out, &errOut, res, true); code != 0 || !strings.HasPrefix(out.String(), `{"status":"TLE","exit_code":137,`) || errOut.Len() != 0 {
		t.Fatalf("json: code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
