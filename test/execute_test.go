package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// codeSandbox starts a daemon and one sandbox for the execute tests.
func codeSandbox(t *testing.T) (context.Context, *soulbox.Sandbox) {
	t.Helper()
	requireRoot(t)
	_, c := sdkDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	sbx, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 10 * time.Minute, Limits: soulbox.Limits{MemoryMB: 1024, DiskSizeMB: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sbx.Kill(context.Background()) })
	return ctx, sbx
}

// TestExecuteCode runs programs once on a live sandbox through the API.
func TestExecuteCode(t *testing.T) {
	ctx, sbx := codeSandbox(t)

	t.Run("python with stdin", func(t *testing.T) {
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "python",
			Code: "import sys\nprint(sum(map(int, sys.stdin.read().split())))\nsys.exit(3)", Stdin: "2 40"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "42\n" || res.Status != "RE" || res.ExitCode != 3 || res.Compile != nil {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("c compiles then runs", func(t *testing.T) {
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "c",
			Code: "#include <stdio.h>\nint main(void){printf(\"hello from C\\n\");return 0;}\n"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "OK" || res.Stdout != "hello from C\n" || res.Compile == nil || res.Compile.Status != "OK" {
			t.Fatalf("%+v", res)
		}
		if len(res.Artifacts) != 0 {
			t.Fatalf("the compiled binary came back as an artifact: %+v", res.Artifacts)
		}
	})
	t.Run("compile error is CE with the compiler's output", func(t *testing.T) {
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "cpp", Code: "int main( { return 0; }\n"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "CE" || res.Compile == nil || res.Compile.Status != "CE" || !strings.Contains(res.Compile.Stderr, "error") {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("output streams before the end", func(t *testing.T) {
		var mu sync.Mutex
		var first time.Time
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "python",
			Code: "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')",
			OnStdout: func(string) {
				mu.Lock()
				if first.IsZero() {
					first = time.Now()
				}
				mu.Unlock()
			}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "a\nb\n" {
			t.Fatalf("stdout %q", res.Stdout)
		}
		if gap := time.Since(first); gap < time.Second {
			t.Fatalf("first output only %v before the end", gap)
		}
	})
	t.Run("timeout is TLE", func(t *testing.T) {
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "bash", Code: "sleep 30", Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "TLE" || res.TimeMS > 10000 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("data analysis: a matplotlib PNG comes back inline", func(t *testing.T) {
		code := `import pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"month": ["jan", "feb", "mar"], "sales": [10, 30, 20]})
print(df["sales"].mean())
df.plot(x="month", y="sales", kind="bar")
plt.savefig("chart.png")
df.to_csv("data.csv", index=False)
`
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "python", Code: code})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "OK" || res.Stdout != "20.0\n" {
			t.Fatalf("%+v", res)
		}
		byName := map[string]soulbox.Artifact{}
		for _, a := range res.Artifacts {
			byName[a.Name] = a
		}
		png, ok := byName["chart.png"]
		if !ok || png.MimeType != "image/png" {
			t.Fatalf("artifacts %+v", res.Artifacts)
		}
		b, err := png.Bytes()
		if err != nil || !bytes.HasPrefix(b, pngMagic) || int64(len(b)) != png.Size {
			t.Fatalf("png: %v, %d bytes", err, len(b))
		}
		if csv := byName["data.csv"]; csv.MimeType != "text/csv" {
			t.Fatalf("csv %+v", csv)
		}
	})
	t.Run("a large artifact comes as a signed URL", func(t *testing.T) {
		res, err := sbx.ExecuteCode(ctx, soulbox.ExecuteRequest{Language: "python",
			Code: "open('big.bin','wb').write(b'x' * (3 << 20))"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Artifacts) != 1 || res.Artifacts[0].URL == "" || res.Artifacts[0].Content != "" {
			t.Fatalf("%+v", res.Artifacts)
		}
		resp, err := http.Get(res.Artifacts[0].URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 || n != 3<<20 {
			t.Fatalf("download: %s, %d bytes", resp.Status, n)
		}
	})
}

// TestCodeContexts drives stateful code interpreter contexts.
func TestCodeContexts(t *testing.T) {
	ctx, sbx := codeSandbox(t)
	py, err := sbx.CreateCodeContext(ctx, "python", "")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, c *soulbox.CodeContext, code string) *soulbox.Execution {
		t.Helper()
		ex, err := c.Run(ctx, code, soulbox.RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}

	t.Run("variables persist and the last expression is a result", func(t *testing.T) {
		run(t, py, "x = 40\nimport math")
		ex := run(t, py, "print('hi')\nx + int(math.sqrt(4))")
		if ex.Text() != "42" || strings.Join(ex.Stdout, "") != "hi\n" || ex.Error != nil {
			t.Fatalf("%+v", ex)
		}
	})
	t.Run("a matplotlib figure is a PNG result", func(t *testing.T) {
		ex := run(t, py, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nprint('drawn')")
		var png string
		for _, r := range ex.Results {
			png += r.PNG
		}
		b, err := base64.StdEncoding.DecodeString(png)
		if err != nil || !bytes.HasPrefix(b, pngMagic) {
			t.Fatalf("results %d, png %d bytes, err %v, stderr %v", len(ex.Results), len(b), err, ex.Stderr)
		}
	})
	t.Run("a DataFrame is HTML and data", func(t *testing.T) {
		ex := run(t, py, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf")
		if len(ex.Results) != 1 || !strings.Contains(ex.Results[0].HTML, "<table") || !strings.Contains(string(ex.Results[0].Data), `"columns":["a","b"]`) {
			t.Fatalf("%+v", ex.Results)
		}
	})
	t.Run("the data-analysis scenario: pandas and matplotlib in steps", func(t *testing.T) {
		run(t, py, "import numpy as np\nsales = pd.DataFrame({'m': range(12), 'v': np.arange(12) ** 2})")
		ex := run(t, py, "ax = sales.plot(x='m', y='v')\nax.get_figure()")
		if len(ex.Results) != 1 || ex.Results[0].PNG == "" || !ex.Results[0].IsMainResult {
			t.Fatalf("%+v", ex)
		}
	})
	t.Run("an error has name, value and traceback", func(t *testing.T) {
		ex := run(t, py, "def f():\n    return 1 / 0\nf()")
		if ex.Error == nil || ex.Error.Name != "ZeroDivisionError" || ex.Error.Value != "division by zero" ||
			!strings.Contains(ex.Error.Traceback, "in f") {
			t.Fatalf("%+v", ex.Error)
		}
	})
	t.Run("interrupt stops a long loop", func(t *testing.T) {
		// Interrupt every second until the loop ends (the first may come
		// before the loop has started on a slow host); the goroutine is
		// done before the subtest returns.
		done, stopped := make(chan struct{}), make(chan error, 1)
		go func() {
			defer close(stopped)
			for {
				select {
				case <-done:
					return
				case <-time.After(time.Second):
				}
				select {
				case <-done:
					return
				default:
				}
				if err := py.Interrupt(ctx); err != nil {
					stopped <- err
					return
				}
			}
		}()
		t0 := time.Now()
		ex := run(t, py, "while True:\n    pass")
		close(done)
		if err := <-stopped; err != nil {
			t.Fatalf("interrupt: %v", err)
		}
		if ex.Error == nil || ex.Error.Name != "KeyboardInterrupt" || time.Since(t0) > 20*time.Second {
			t.Fatalf("%+v", ex.Error)
		}
		if ex := run(t, py, "x"); ex.Text() != "40" {
			t.Fatalf("state lost after an interrupt: %+v", ex)
		}
	})
	t.Run("list, restart clears state, delete", func(t *testing.T) {
		cs, err := sbx.CodeContexts(ctx)
		if err != nil || len(cs) != 1 || cs[0].ID != py.ID || !cs[0].Alive {
			t.Fatalf("%v %+v", err, cs)
		}
		if err := py.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		ex := run(t, py, "x")
		if ex.Error == nil || ex.Error.Name != "NameError" {
			t.Fatalf("%+v", ex)
		}
		if err := py.Delete(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := py.Run(ctx, "1", soulbox.RunOptions{}); err == nil {
			t.Fatal("a deleted context ran code")
		}
	})
	t.Run("javascript keeps variables", func(t *testing.T) {
		js, err := sbx.CreateCodeContext(ctx, "javascript", "")
		if err != nil {
			t.Fatal(err)
		}
		run(t, js, "const base = 40; function add(a) { return base + a }")
		ex := run(t, js, "console.log('hi'); add(2)")
		if ex.Text() != "42" || strings.Join(ex.Stdout, "") != "hi\n" {
			t.Fatalf("%+v", ex)
		}
		ex = run(t, js, "undefinedThing.x")
		if ex.Error == nil || ex.Error.Name != "ReferenceError" {
			t.Fatalf("%+v", ex.Error)
		}
		go func() {
			time.Sleep(time.Second)
			if err := js.Interrupt(ctx); err != nil {
				t.Error(err)
			}
		}()
		ex = run(t, js, "while (true) {}")
		if ex.Error == nil {
			t.Fatalf("the loop was not interrupted: %+v", ex)
		}
		if ex := run(t, js, "add(1)"); ex.Text() != "41" {
			t.Fatalf("state lost after an interrupt: %+v", ex)
		}
	})
}

// TestJudgeAPI judges submissions over the API: the contest scenario.
func TestJudgeAPI(t *testing.T) {
	requireRoot(t)
	_, c := sdkDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tests := []soulbox.JudgeTest{{Name: "small", Stdin: "5\n", Expected: "120\n"}, {Name: "big", Stdin: "10\n", Expected: "3628800\n"}}
	fact := "#include <iostream>\nint main(){long n,f=1;std::cin>>n;for(long i=2;i<=n;i++)f*=i;std::cout<<f<<\"\\n\";}\n"
	lim := map[string]string{"memory": "64MB", "timeout": "2s"}
	rep, err := c.Judge(ctx, soulbox.JudgeRequest{Language: "cpp", Source: fact, Tests: tests, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != "AC" || len(rep.Cases) != 2 || rep.Compile == nil || rep.Compile.Status != "OK" {
		t.Fatalf("%+v", rep)
	}
	reps, err := c.JudgeBatch(ctx, []soulbox.JudgeRequest{
		{Language: "cpp", Source: "int main(){return 0;}\n", Tests: tests, Limits: lim},
		{Language: "cpp", Source: "int main(){for(;;);}\n", Tests: tests, Limits: lim},
		{Language: "cpp", Source: "int main( {}\n", Tests: tests, Limits: lim},
		{Language: "python", Source: "print(int(input()) and 120)", Tests: tests[:1], Limits: lim},
		{Language: "cobol", Source: "", Tests: tests},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reps {
		got = append(got, r.Verdict)
	}
	if strings.Join(got, ",") != "WA,TLE,CE,AC," || reps[4].Error == "" {
		t.Fatalf("verdicts %v, last %+v", got, reps[4])
	}
}
