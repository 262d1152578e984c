//go:build linux

package seccomp

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/default.golden from Default().Render()")

const goldenPath = "testdata/default.golden"

// TestRenderGolden pins the resolved default policy. A change to the
// policy, or to the syscall table it resolves against, shows up as a diff
// of testdata/default.golden that reviewers read line by line.
func TestRenderGolden(t *testing.T) {
	requireNative(t)
	got := Default().Render()
	if *update {
		if err := os.WriteFile(filepath.FromSlash(goldenPath), []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenPath)
		return
	}
	wantBytes, err := os.ReadFile(filepath.FromSlash(goldenPath))
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want := string(wantBytes)
	if got == want {
		return
	}
	gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(gotLines) || i < len(wantLines); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("%s:%d:\n got: %q\nwant: %q", goldenPath, i+1, g, w)
		}
	}
	t.Error("Render output differs from the golden file; if the change is intended, run: go test ./internal/seccomp -run TestRenderGolden -update")
}

// TestRenderShowsEveryRule guards the golden file's completeness: each
// syscall line must carry every condition the policy attaches to it.
func TestRenderShowsEveryRule(t *testing.T) {
	a := requireNative(t)
	p := Default()
	lines := map[string]string{}
	for _, l := range strings.Split(p.Render(), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && !strings.HasPrefix(l, "#") {
			lines[f[1]] = l
		}
	}
	if len(lines) != len(a.syscalls) {
		t.Errorf("Render has %d syscall lines, want one per table entry (%d)", len(lines), len(a.syscalls))
	}
	for i, r := range p.Rules {
		for _, n := range r.Names {
			l, ok := lines[n]
			if !ok {
				t.Errorf("rule %d: %q missing from Render", i, n)
				continue
			}
			if !strings.Contains(l, r.Action.String()) {
				t.Errorf("rule %d: line for %q lacks action %v: %q", i, n, r.Action, l)
			}
			for _, c := range r.Conds {
				if !strings.Contains(l, c.String()) {
					t.Errorf("rule %d: line for %q lacks condition %v: %q", i, n, c, l)
				}
			}
		}
	}
}
