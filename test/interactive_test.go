package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// guessInteractor is a guessing game: the number is in input.txt (1-100);
// "? X" is answered 1 if the number is at least X, else 0; "! X" ends the
// game. More than 7 questions, a wrong guess or a malformed line is WA
// (exit 1). CRASH in input.txt makes it abort (a judge error); an
// answer.txt neither empty nor the number makes it fail (exit 3).
const guessInteractor = `import os, sys
text = open(sys.argv[1]).read().strip()
if text == "CRASH":
    os.abort()
n = int(text)
answer = open(sys.argv[3]).read().strip()
if answer and answer != str(n):
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
// as the expected answer too, except for numbers ending in "?" (no .out).
func guessTests(t *testing.T, numbers ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range numbers {
		name := filepath.Join(dir, string(rune('a'+i)))
		n, noAnswer := strings.CutSuffix(n, "?")
		os.WriteFile(name+".in", []byte(n+"\n"), 0o644)
		if !noAnswer {
			os.WriteFile(name+".out", []byte(n+"\n"), 0o644)
		}
	}
	return dir
}

// interactiveTimeout is the submissions' wall limit, which "never
// answers" waits for: in the emulated cgroup v2 guest (-short) Python's
// start-up and seven round trips alone can take a second or more.
func interactiveTimeout() string {
	if testing.Short() {
		return "8s"
	}
	return "2s"
}

// TestJudgeInteractive: soulbox judge --interactor on the guessing game.
// A binary search is AC on every case (one without NAME.out: the answer
// is optional); a wrong guess WA; a submission that
// never asks TLE (its own limit first, though the interactor then fails
// on the closed pipe); an interactor that aborts JE, with its status.
func TestJudgeInteractive(t *testing.T) {
	requireRoot(t)
	requireLang(t, "python3")
	dir := dataDir(t)
	inter := filepath.Join(t.TempDir(), "interactor.py")
	os.WriteFile(inter, []byte(guessInteractor), 0o644)
	flags := []string{"--interactor", inter, "--interactor-lang", "python", "--timeout", interactiveTimeout(), "--parallel", "2"}
	for _, c := range []struct {
		name, src string
		numbers   []string
		want      []string
	}{
		{"binary search", guessSubmission, []string{"37", "1", "100?"}, []string{"AC", "AC", "AC"}},
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

// TestJudgeInteractiveAPI: interactive problems over POST /judge/batch
// (the SDK), and the streamed run of GET /judge/interactive: a program
// that echoes each line is sent a line only after the previous echo came
// back, then its stdin is closed and the result arrives. Bad requests get
// an error message and close code 1008, and the daemon keeps serving.
func TestJudgeInteractiveAPI(t *testing.T) {
	requireRoot(t)
	requireLang(t, "python3")
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, "--pool", "0")
	c := sdkClient(t, d, key)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("judge batch", func(t *testing.T) {
		tests := []soulbox.JudgeTest{{Stdin: "37\n", Expected: "37\n"}, {Stdin: "64\n", Expected: "64\n"}}
		inter := &soulbox.JudgeInteractor{Language: "python", Source: guessInteractor, Limits: map[string]string{"timeout": "10s"}}
		lim := map[string]string{"timeout": interactiveTimeout()}
		reps, err := c.JudgeBatch(ctx, []soulbox.JudgeRequest{
			{Language: "python", Source: guessSubmission, Tests: tests, Limits: lim, Interactor: inter},
			{Language: "python", Source: "print('! 37', flush=True)", Tests: tests, Limits: lim, Interactor: inter},
			{Language: "python", Source: guessSubmission, Tests: tests[:1], Limits: lim,
				Interactor: &soulbox.JudgeInteractor{Language: "python", Source: "import sys; sys.exit(3)"}},
			{Language: "python", Source: guessSubmission, Tests: tests[:1], Limits: lim,
				Interactor: &soulbox.JudgeInteractor{Language: "cpp", Source: "int main( {"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range reps {
			got = append(got, r.Verdict)
		}
		if strings.Join(got, ",") != "AC,WA,JE," || !strings.Contains(reps[3].Error, "interactor") {
			t.Fatalf("verdicts %v, last %+v", got, reps[3])
		}
		if cs := reps[1].Cases; cs[0].Verdict != "AC" || cs[1].Verdict != "WA" || cs[1].Interactor == nil || !strings.Contains(cs[1].Interactor.Stderr, "guessed 37") {
			t.Errorf("wrong guess: %+v", cs)
		}
		if ir := reps[2].Cases[0].Interactor; ir == nil || ir.ExitCode != 3 {
			t.Errorf("interactor exiting 3: %+v", ir)
		}
	})

	t.Run("streamed echo", func(t *testing.T) {
		run, err := c.JudgeInteractive(ctx, soulbox.InteractiveRequest{
			Language: "python",
			Source:   "import sys\nfor line in sys.stdin:\n    print('echo:', line.strip(), flush=True)\nprint('bye', file=sys.stderr)\n",
			Limits:   map[string]string{"timeout": "20s"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		if run.Compile.Status != "OK" {
			t.Fatalf("compile %+v", run.Compile)
		}
		for i := range 5 {
			fmt.Fprintf(run, "line %d\n", i)
			want := fmt.Sprintf("echo: line %d\n", i)
			var got string
			for got != want {
				ev, err := run.Next(ctx)
				if err != nil || ev.Result != nil || ev.Stream != "stdout" {
					t.Fatalf("waiting for %q (have %q): %+v, %v", want, got, ev, err)
				}
				got += string(ev.Data)
				if !strings.HasPrefix(want, got) {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		}
		if err := run.CloseStdin(); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		res, err := run.Wait(ctx, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "OK" || res.Verdict != "OK" || res.ExitCode != 0 || res.WallMS <= 0 || res.MemoryBytes <= 0 || stdout.String() != "" || stderr.String() != "bye\n" {
			t.Fatalf("result %+v, stdout %q, stderr %q", res, stdout.String(), stderr.String())
		}
	})

	t.Run("streamed time limit", func(t *testing.T) {
		run, err := c.JudgeInteractive(ctx, soulbox.InteractiveRequest{Language: "python", Source: "input()", Limits: map[string]string{"timeout": "500ms"}})
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		res, err := run.Wait(ctx, nil, nil)
		if err != nil || res.Status != "TLE" || res.Verdict != "TLE" {
			t.Fatalf("%+v, %v: want TLE (stdin left open)", res, err)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		_, err := c.JudgeInteractive(ctx, soulbox.InteractiveRequest{Language: "cobol", Source: "x"})
		if !errors.Is(err, soulbox.ErrInvalid) || !strings.Contains(err.Error(), "cobol") {
			t.Errorf("unknown language: %v", err)
		}
		url := "ws" + strings.TrimPrefix(d.url, "http") + "/judge/interactive"
		for _, tc := range []struct{ name, first, second, want string }{
			{"malformed submission", "{", "", "malformed"},
			{"bad limits", `{"language":"python","source":"","limits":{"memory":"-1"}}`, "", "memory"},
			{"unknown message", `{"language":"python","source":"input()"}`, `{"type":"bogus"}`, "bogus"},
		} {
			conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key}}})
			if resp != nil && resp.Body != nil {
				resp.Body.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(ctx, websocket.MessageText, []byte(tc.first))
			if tc.second != "" {
				if _, msg, err := conn.Read(ctx); err != nil || !strings.Contains(string(msg), `"compile"`) {
					t.Fatalf("%s: %s, %v", tc.name, msg, err)
				}
				conn.Write(ctx, websocket.MessageText, []byte(tc.second))
			}
			_, msg, err := conn.Read(ctx)
			if err != nil || !strings.Contains(string(msg), `"error"`) || !strings.Contains(string(msg), tc.want) {
				t.Errorf("%s: %s, %v: want an error message naming %s", tc.name, msg, err, tc.want)
			}
			if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Errorf("%s: %v, want close code 1008", tc.name, err)
			}
			conn.CloseNow()
		}
		_, resp, err := websocket.Dial(ctx, url, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("dialled without an API key: %v", err)
		}
		run, err := c.JudgeInteractive(ctx, soulbox.InteractiveRequest{Language: "python", Source: "print(6*7)"})
		if err != nil {
			t.Fatal(err)
		}
		defer run.Close()
		var out strings.Builder
		if res, err := run.Wait(ctx, &out, nil); err != nil || res.Status != "OK" || out.String() != "42\n" {
			t.Fatalf("after bad requests: %+v, %v, %q", res, err, out.String())
		}
	})
	d.stop(syscall.SIGTERM)
	hostClean(t, dir)
}
