package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

type judgeResult struct {
	Verdict string `json:"verdict"`
	Compile *struct {
		Status string `json:"status"`
		Stderr string `json:"stderr"`
	} `json:"compile"`
	Cases []struct {
		Name        string  `json:"name"`
		Verdict     string  `json:"verdict"`
		TimeMS      float64 `json:"time_ms"`
		MemoryBytes int64   `json:"memory_bytes"`
		Interactor  *struct {
			Status   string `json:"status"`
			ExitCode int    `json:"exit_code"`
			Stderr   string `json:"stderr"`
		} `json:"interactor"`
	} `json:"cases"`
}

func soulboxJudge(t *testing.T, dir, tests, lang, src string, flags ...string) judgeResult {
	t.Helper()
	f := filepath.Join(t.TempDir(), "src")
	os.WriteFile(f, []byte(src), 0o644)
	args := append([]string{"judge", "--json", "--data-dir", dir, "--lang", lang, "--tests", tests}, flags...)
	cmd := exec.Command(soulboxBin, append(args, f)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res judgeResult
	if derr := json.Unmarshal(stdout.Bytes(), &res); derr != nil {
		t.Fatalf("soulbox %v: no JSON (exit %v): %v\nstdout %q\nstderr %s", args, err, derr, stdout.String(), stderr.String())
	}
	if want := 0; res.Verdict != "AC" {
		want = 1
		if cmd.ProcessState.ExitCode() != want {
			t.Errorf("verdict %s: exit status %d, want %d", res.Verdict, cmd.ProcessState.ExitCode(), want)
		}
	}
	return res
}

// TestScenarioJudge: a C++ factorial against two cases — AC on both; a
// wrong answer, an infinite loop, a memory hog and a syntax error get WA,
// TLE, MLE and CE.
func TestScenarioJudge(t *testing.T) {
	requireRoot(t)
	requireLang(t, "g++")
	dir := dataDir(t)
	tests := t.TempDir()
	for name, body := range map[string]string{"1.in": "5\n", "1.out": "120\n", "2.in": "10\n", "2.out": "3628800  \n\n"} {
		os.WriteFile(filepath.Join(tests, name), []byte(body), 0o644)
	}
	limits := []string{"--memory", "64M", "--timeout", "2s", "--cpu-time", "1s"}
	const head = "#include <iostream>\n#include <vector>\n#include <cstring>\nstd::vector<char *> keep;\nint main() { long n; std::cin >> n; "
	for _, c := range []struct {
		name, body, want string
		cases            []string
	}{
		{"accepted", "long f = 1; for (long i = 2; i <= n; i++) f *= i; std::cout << f << \"\\n\"; }", "AC", []string{"AC", "AC"}},
		{"wrong answer", "long f = 1; for (long i = 2; i < n; i++) f *= i; std::cout << f << \"\\n\"; }", "WA", []string{"WA", "WA"}},
		{"infinite loop", "volatile long f = 1; for (;;) f++; }", "TLE", []string{"TLE", "TLE"}},
		{"memory hog", "for (;;) { char *p = new char[1 << 20]; std::memset(p, n, 1 << 20); keep.push_back(p); } }", "MLE", []string{"MLE", "MLE"}},
		{"syntax error", "std::cout << n }", "CE", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := soulboxJudge(t, dir, tests, "cpp", head+c.body, limits...)
			if res.Verdict != c.want || len(res.Cases) != len(c.cases) {
				t.Fatalf("verdict %s with %d cases, want %s with %d (compile %+v)", res.Verdict, len(res.Cases), c.want, len(c.cases), res.Compile)
			}
			for i, cr := range res.Cases {
				if cr.Verdict != c.cases[i] || cr.Name != []string{"1", "2"}[i] || cr.MemoryBytes <= 0 {
					t.Errorf("case %+v, want %s", cr, c.cases[i])
				}
			}
			if c.want == "CE" && (res.Compile == nil || res.Compile.Status != "CE" || res.Compile.Stderr == "") {
				t.Errorf("compile %+v: want CE with the compiler's output", res.Compile)
			}
		})
	}
	// Per-case limits and comparison modes.
	t.Run("case limits and float compare", func(t *testing.T) {
		tc := t.TempDir()
		os.WriteFile(filepath.Join(tc, "a.in"), []byte("1\n"), 0o644)
		os.WriteFile(filepath.Join(tc, "a.out"), []byte("0.3333333\n"), 0o644)
		os.WriteFile(filepath.Join(tc, "b.in"), []byte("2\n"), 0o644)
		os.WriteFile(filepath.Join(tc, "b.out"), []byte("0.3333333\n"), 0o644)
		os.WriteFile(filepath.Join(tc, "b.limits"), []byte(`{"timeout": "300ms"}`), 0o644)
		src := "n = int(input())\nimport time\nif n == 2: time.sleep(1)\nprint(1/3)\n"
		res := soulboxJudge(t, dir, tc, "python", src, "--compare", "float:1e-6")
		if res.Verdict != "TLE" || len(res.Cases) != 2 || res.Cases[0].Verdict != "AC" || res.Cases[1].Verdict != "TLE" {
			t.Errorf("%+v: want a AC (float compare), b TLE (its own 300ms limit)", res)
		}
	})
	// The judge runs Python without the site module (see
	// internal/lang/judge-python.py): the system's packages still import,
	// and exit() still ends the program.
	t.Run("python without site", func(t *testing.T) {
		tc := t.TempDir()
		os.WriteFile(filepath.Join(tc, "a.in"), []byte("2 40\n"), 0o644)
		os.WriteFile(filepath.Join(tc, "a.out"), []byte("42\n"), 0o644)
		src := "import sys, numpy\nprint(numpy.int64(sum(map(int, input().split()))))\nif not sys.flags.no_site: print('site ran')\nexit()\nprint('after exit')\n"
		if res := soulboxJudge(t, dir, tc, "python", src); res.Verdict != "AC" {
			t.Errorf("%+v: want AC", res)
		}
	})
	hostClean(t, dir)
}

// TestJudgeCasesIsolated: a submission that leaves files, a locked
// directory and a background process behind in every case, and fails if
// it finds any of them, is AC on every case: in the worker sandbox each
// case starts clean (and so it does with --fresh-sandboxes). A case with a
// lower memory limit of its own gets it in the same worker.
func TestJudgeCasesIsolated(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	tests := t.TempDir()
	for i := 1; i <= 6; i++ {
		os.WriteFile(filepath.Join(tests, fmt.Sprintf("%d.in", i)), fmt.Appendf(nil, "%d %d\n", i, i), 0o644)
		os.WriteFile(filepath.Join(tests, fmt.Sprintf("%d.out", i)), fmt.Appendf(nil, "%d\n", 2*i), 0o644)
	}
	os.WriteFile(filepath.Join(tests, "4.limits"), []byte(`{"memory": "40M"}`), 0o644)
	src := `import os, subprocess, sys
a, b = map(int, input().split())
left = [p for p in ("/home/user/left", "/tmp/left", "/dev/shm/left", "/var/tmp/left", "/home/user/locked") if os.path.lexists(p)]
if left or subprocess.run(["pgrep", "-x", "sleep"], stdout=subprocess.DEVNULL).returncode == 0:
    print("state from an earlier case:", left); sys.exit(0)
for p in ("/home/user/left", "/tmp/left", "/dev/shm/left", "/var/tmp/left"):
    open(p, "w").write("x")
os.makedirs("/home/user/locked/in"); os.chmod("/home/user/locked", 0)
subprocess.Popen(["sleep", "300"], start_new_session=True)
if a == 4:
    hog = bytearray(64 << 20)
print(a + b)
`
	for _, flags := range [][]string{nil, {"--fresh-sandboxes"}} {
		res := soulboxJudge(t, dir, tests, "python", src, flags...)
		if res.Verdict != "MLE" || len(res.Cases) != 6 {
			t.Fatalf("%v: %+v", flags, res)
		}
		for _, c := range res.Cases {
			if want := map[bool]string{true: "MLE", false: "AC"}[c.Name == "4"]; c.Verdict != want {
				t.Errorf("%v: case %s: %s, want %s", flags, c.Name, c.Verdict, want)
			}
		}
	}
	hostClean(t, dir)
}
