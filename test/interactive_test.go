package test

import (
	"os"
	"path/filepath"
	"testing"
)

// guessInteractor is a guessing game: the number is in input.txt (1-100);
// "? X" is answered 1 if the number is at least X, else 0; "! X" ends the
// game. More than 7 questions, a wrong guess or a malformed line is WA
// (exit 1). CRASH in input.txt makes it abort (a judge error).
const guessInteractor = `import os, sys
text = open(sys.argv[1]).read().strip()
if text == "CRASH":
    os.abort()
n = int(text)
if open(sys.argv[3]).read().strip() != str(n):
    sys.exit(3)
for _ in range(8):
    line = sys.stdin.readline().split()
    if len(line) != 2:
        print("malformed or missing line", file=sys.stderr); sys.exit(1)
    if line[0] == "!":
        if int(line[1]) == n:
            sys.exit(0)
        print("guessed", line[1], "not", n, file=sys.stderr); sys.exit(1)
    print(1 if n >= int(line[1]) else 0, flush=True)
print("too many questions", file=sys.stderr)
sys.exit(1)
`

// guessSubmission binary-searches with at most 7 questions.
const guessSubmission = `lo, hi = 1, 100
while lo < hi:
    mid = (lo + hi + 1) // 2
    print("?", mid, flush=True)
    if input().strip() == "1":
        lo = mid
    else:
        hi = mid - 1
print("!", lo, flush=True)
`

// guessTests writes the guessing game's cases: numbers, with the number
// as the expected answer too.
func guessTests(t *testing.T, numbers ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range numbers {
		name := filepath.Join(dir, string(rune('a'+i)))
		os.WriteFile(name+".in", []byte(n+"\n"), 0o644)
		os.WriteFile(name+".out", []byte(n+"\n"), 0o644)
	}
	return dir
}

// TestJudgeInteractive: soulbox judge --interactor on the guessing game.
// A binary search is AC on every case; a wrong guess WA; a submission that
// never asks TLE (its own limit first, though the interactor then fails
// on the closed pipe); an interactor that aborts JE, with its status.
func TestJudgeInteractive(t *testing.T) {
	requireRoot(t)
	requireLang(t, "python3")
	dir := dataDir(t)
	inter := filepath.Join(t.TempDir(), "interactor.py")
	os.WriteFile(inter, []byte(guessInteractor), 0o644)
	flags := []string{"--interactor", inter, "--interactor-lang", "python", "--timeout", "2s", "--parallel", "2"}
	for _, c := range []struct {
		name, src string
		numbers   []string
		want      []string
	}{
		{"binary search", guessSubmission, []string{"37", "1", "100"}, []string{"AC", "AC", "AC"}},
		{"wrong guess", "print('! 50', flush=True)\n", []string{"37", "50"}, []string{"WA", "AC"}},
		{"never answers", "import time\ntime.sleep(60)\n", []string{"37"}, []string{"TLE"}},
		{"interactor crash", guessSubmission, []string{"CRASH"}, []string{"JE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := soulboxJudge(t, dir, guessTests(t, c.numbers...), "python", c.src, flags...)
			if len(res.Cases) != len(c.want) || res.Verdict != c.want[0] {
				t.Fatalf("%+v: want %v", res, c.want)
			}
			for i, cr := range res.Cases {
				if cr.Verdict != c.want[i] || cr.Interactor == nil {
					t.Errorf("case %s: %s (interactor %+v), want %s", cr.Name, cr.Verdict, cr.Interactor, c.want[i])
				}
			}
			if c.want[0] == "JE" && res.Cases[0].Interactor.Status != "SG" {
				t.Errorf("interactor %+v: want status SG", res.Cases[0].Interactor)
			}
			if c.want[0] == "WA" && res.Cases[0].Interactor.Stderr == "" {
				t.Errorf("interactor %+v: want its comment on stderr", res.Cases[0].Interactor)
			}
		})
	}
	hostClean(t, dir)
}
