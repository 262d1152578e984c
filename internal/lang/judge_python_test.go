package lang

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestJudgePython: a program run by the judge's Python loader behaves as
// under `python3 main.py` — same stdout, stderr (tracebacks and syntax
// errors name main.py, never the loader) and exit status — while the site
// module's start-up hooks do not run.
func TestJudgePython(t *testing.T) {
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is missing (scripts/install-deps.sh installs it)")
		}
		t.Skip("needs /usr/bin/python3")
	}
	l, _ := Lookup("python")
	argv := l.JudgeArgv()
	if argv[0] != "python3" || argv[len(argv)-1] != l.Source {
		t.Fatalf("judge argv %q", argv)
	}
	run := func(t *testing.T, dir, stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(py, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), l.RunEnv()...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	for _, c := range []struct{ name, src, stdin string }{
		{"a plus b", "print(sum(map(int, input().split())))\n", "2 40\n"},
		{"what a script sees", "import sys\nprint(__name__, __file__, sys.argv, sys.path[0])\nprint(sorted(k for k in globals() if not k.startswith('__')))\nprint(type(__loader__).__name__, __loader__.name, __spec__, type(help).__name__)\n", ""},
		{"exit", "print('before')\nexit(3)\nprint('after')\n", ""},
		{"quit with a message", "quit('bye')\n", ""},
		{"exit repr", "print(repr(exit), repr(quit))\n", ""},
		{"raise", "def f():\n    return 1 / 0\nprint('x')\nf()\n", ""},
		{"syntax error", "print(1\n", ""},
		{"system packages", "import numpy, mpl_toolkits\nprint(numpy.add(1, 2))\n", ""},
		{"stdin after exit", "import sys\nexit()\n", "left\n"},
		{"recursion", "import sys\nsys.setrecursionlimit(10**5)\nf = lambda n: n and 1 + f(n - 1)\nprint(f(5000))\n", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, l.Source), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			wantOut, wantErr, wantCode := run(t, dir, c.stdin, l.Source)
			gotOut, gotErr, gotCode := run(t, dir, c.stdin, argv[1:]...)
			if gotOut != wantOut || gotErr != wantErr || gotCode != wantCode {
				t.Errorf("judge loader: exit %d, stdout %q, stderr %q\npython3 main.py: exit %d, stdout %q, stderr %q",
					gotCode, gotOut, gotErr, wantCode, wantOut, wantErr)
			}
		})
	}
	t.Run("no site hooks", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, l.Source), []byte("import sys\nprint(sys.flags.no_site, 'site' in sys.modules)\n"), 0o644)
		if out, _, _ := run(t, dir, "", argv[1:]...); out != "1 False\n" {
			t.Errorf("no_site and site imported: %q, want 1 False", out)
		}
	})
}
