package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// codeResult is the JSON of `soulbox run --lang --json`.
type codeResult struct {
	runResult
	Language string `json:"language"`
	Compile  *struct {
		Status string  `json:"status"`
		Stderr string  `json:"stderr"`
		Stdout string  `json:"stdout"`
		MS     float64 `json:"ms"`
		Cached bool    `json:"cached"`
	} `json:"compile"`
	Artifacts []struct {
		Path          string `json:"path"`
		MimeType      string `json:"mime_type"`
		Size          int64  `json:"size"`
		ContentBase64 string `json:"content_base64"`
		SavedTo       string `json:"saved_to"`
	} `json:"artifacts"`
}

// soulboxCode runs `soulbox run --lang L --json` with the source on a
// file and stdin as the program's stdin.
func soulboxCode(t *testing.T, dir, lang, src, stdin string, flags ...string) codeResult {
	t.Helper()
	f := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--json", "--data-dir", dir, "--lang", lang}, flags...)
	args = append(args, f)
	cmd := exec.Command(soulboxBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	var res codeResult
	if derr := json.Unmarshal(stdout.Bytes(), &res); derr != nil {
		t.Fatalf("soulbox %v: no JSON result (exit %v): %v\nstdout: %q\nstderr: %s", args, err, derr, stdout.String(), stderr.String())
	}
	if res.Status == "XX" {
		t.Fatalf("soulbox %v: internal error: %s\nstderr: %s", args, res.Error, stderr.String())
	}
	return res
}

// requireLang needs the language's tool in the host's /usr (what the host
// template shows), or in its template's image: skip naming it, or fail
// under CI=true.
func requireLang(t *testing.T, tool string) {
	t.Helper()
	if tool == "julia" {
		requireJulia(t)
		return
	}
	for _, d := range []string{"/usr/bin/", "/usr/sbin/"} {
		if _, err := os.Stat(d + tool); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed under /usr (scripts/install-deps.sh test installs it), and CI=true: failing instead of skipping", tool)
	}
	t.Skipf("%s is not installed under /usr (scripts/install-deps.sh test installs it)", tool)
}

// langCase holds one language's programs: hello prints "hello", echo
// prints "got " and the first line of stdin, file writes "out.txt"
// containing "data", fail exits with status 3, and bad does not compile.
type langCase struct {
	lang, tool                   string
	hello, echo, file, fail, bad string
	flags                        []string
}

var langCases = []langCase{
	{lang: "python", tool: "python3", hello: `print("hello")`, echo: `print("got", input())`,
		file: `open("out.txt", "w").write("data")`, fail: `import sys; sys.exit(3)`},
	{lang: "javascript", tool: "node", hello: `console.log("hello")`,
		echo: `console.log("got " + require("fs").readFileSync(0, "utf8").split("\n")[0])`,
		file: `require("fs").writeFileSync("out.txt", "data")`, fail: `process.exit(3)`},
	{lang: "typescript", tool: "tsc", hello: `const s: string = "hello"; console.log(s)`,
		echo: `import { readFileSync } from "fs"; const l: string = readFileSync(0, "utf8").split("\n")[0]; console.log("got " + l)`,
		file: `import * as fs from "fs"; fs.writeFileSync("out.txt", "data")`, fail: `process.exit(3)`,
		bad: `const x: number = "not a number";`},
	{lang: "ruby", tool: "ruby", hello: `puts "hello"`, echo: `puts "got " + STDIN.gets.chomp`,
		file: `File.write("out.txt", "data")`, fail: `exit 3`},
	{lang: "go", tool: "go", hello: "package main\nimport \"fmt\"\nfunc main() { fmt.Println(\"hello\") }",
		echo: "package main\nimport (\"bufio\"; \"fmt\"; \"os\")\nfunc main() { s := bufio.NewScanner(os.Stdin); s.Scan(); fmt.Println(\"got \" + s.Text()) }",
		file: "package main\nimport \"os\"\nfunc main() { os.WriteFile(\"out.txt\", []byte(\"data\"), 0o644) }",
		fail: "package main\nimport \"os\"\nfunc main() { os.Exit(3) }", bad: "package main\nfunc main() { undefined() }"},
	{lang: "rust", tool: "rustc", hello: `fn main() { println!("hello"); }`,
		echo: `fn main() { let mut s = String::new(); std::io::stdin().read_line(&mut s).unwrap(); println!("got {}", s.trim_end()); }`,
		file: `fn main() { std::fs::write("out.txt", "data").unwrap(); }`, fail: `fn main() { std::process::exit(3); }`,
		bad: `fn main() { let x: i32 = "no"; }`},
	{lang: "java", tool: "javac", hello: `public class Main { public static void main(String[] a) { System.out.println("hello"); } }`,
		echo:  `public class Main { public static void main(String[] a) throws Exception { var r = new java.io.BufferedReader(new java.io.InputStreamReader(System.in)); System.out.println("got " + r.readLine()); } }`,
		file:  `public class Main { public static void main(String[] a) throws Exception { java.nio.file.Files.writeString(java.nio.file.Path.of("out.txt"), "data"); } }`,
		fail:  `public class Main { public static void main(String[] a) { System.exit(3); } }`,
		bad:   `public class Main { public static void main(String[] a) { int x = "no"; } }`,
		flags: []string{"--memory", "1G"}},
	{lang: "csharp", tool: "mcs", hello: `class P { static void Main() { System.Console.WriteLine("hello"); } }`,
		echo: `class P { static void Main() { System.Console.WriteLine("got " + System.Console.ReadLine()); } }`,
		file: `class P { static void Main() { System.IO.File.WriteAllText("out.txt", "data"); } }`,
		fail: `class P { static void Main() { System.Environment.Exit(3); } }`,
		bad:  `class P { static void Main() { int x = "no"; } }`},
	{lang: "php", tool: "php", hello: `<?php echo "hello\n";`, echo: `<?php echo "got ", trim(fgets(STDIN)), "\n";`,
		file: `<?php file_put_contents("out.txt", "data");`, fail: `<?php exit(3);`},
	{lang: "bash", tool: "bash", hello: `echo hello`, echo: `read l; echo "got $l"`,
		file: `printf data > out.txt`, fail: `exit 3`},
	{lang: "r", tool: "Rscript", hello: `cat("hello\n")`, echo: `l <- readLines(file("stdin"), n = 1); cat("got ", l, "\n", sep = "")`,
		file: `cat("data", file = "out.txt")`, fail: `quit(status = 3)`},
	{lang: "c", tool: "gcc", hello: "#include <stdio.h>\nint main(void) { puts(\"hello\"); }",
		echo: "#include <stdio.h>\nint main(void) { char b[100]; fgets(b, sizeof b, stdin); printf(\"got %s\", b); }",
		file: "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"out.txt\", \"w\"); fputs(\"data\", f); fclose(f); }",
		fail: "int main(void) { return 3; }", bad: "int main(void) { return x; }"},
	{lang: "cpp", tool: "g++", hello: "#include <iostream>\nint main() { std::cout << \"hello\\n\"; }",
		echo: "#include <iostream>\n#include <string>\nint main() { std::string l; std::getline(std::cin, l); std::cout << \"got \" << l << \"\\n\"; }",
		file: "#include <fstream>\nint main() { std::ofstream(\"out.txt\") << \"data\"; }",
		fail: "int main() { return 3; }", bad: "int main() { return x; }"},
	{lang: "julia", tool: "julia", hello: `println("hello")`, echo: `println("got ", readline())`,
		file: `write("out.txt", "data")`, fail: `exit(3)`},
}

// TestCodeLanguages runs, per language: hello world, reading stdin, a
// runtime error with its exit code, a program whose file comes back as an
// artifact, and (compiled languages) a compile error.
func TestCodeLanguages(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	for _, lc := range langCases {
		t.Run(lc.lang, func(t *testing.T) {
			requireLang(t, lc.tool)
			flags := append([]string{"--timeout", "60s", "--cpu-time", "60s"}, lc.flags...)
			res := soulboxCode(t, dir, lc.lang, lc.hello, "", flags...)
			if res.Status != "OK" || res.Stdout != "hello\n" || res.Language != lc.lang {
				t.Fatalf("hello: %s exit %d stdout %q stderr %q compile %+v", res.Status, res.ExitCode, res.Stdout, res.Stderr, res.Compile)
			}
			if len(res.Artifacts) != 0 {
				t.Errorf("hello: artifacts %+v, want none (caches must stay out of the working directory)", res.Artifacts)
			}
			res = soulboxCode(t, dir, lc.lang, lc.echo, "world\n", flags...)
			if res.Status != "OK" || res.Stdout != "got world\n" {
				t.Errorf("stdin: %s stdout %q stderr %q", res.Status, res.Stdout, res.Stderr)
			}
			res = soulboxCode(t, dir, lc.lang, lc.fail, "", flags...)
			if res.Status != "RE" || res.ExitCode != 3 {
				t.Errorf("runtime error: %s exit %d, want RE 3 (stderr %q)", res.Status, res.ExitCode, res.Stderr)
			}
			res = soulboxCode(t, dir, lc.lang, lc.file, "", flags...)
			if res.Status != "OK" || len(res.Artifacts) != 1 || res.Artifacts[0].Path != "out.txt" ||
				res.Artifacts[0].ContentBase64 != base64.StdEncoding.EncodeToString([]byte("data")) || res.Artifacts[0].MimeType != "text/plain; charset=utf-8" {
				t.Errorf("artifact: %s stderr %q artifacts %+v", res.Status, res.Stderr, res.Artifacts)
			}
			if lc.bad != "" {
				res = soulboxCode(t, dir, lc.lang, lc.bad, "", flags...)
				if res.Status != "CE" || res.Compile == nil || res.Compile.Status != "CE" || res.Compile.Stderr+res.Compile.Stdout == "" {
					t.Errorf("compile error: %s compile %+v", res.Status, res.Compile)
				}
			}
		})
	}
	hostClean(t, dir)
}

// TestCodeCompileCache: the same source twice compiles once.
func TestCodeCompileCache(t *testing.T) {
	requireRoot(t)
	requireLang(t, "g++")
	dir := dataDir(t)
	src := "#include <cstdio>\nint main() { puts(\"cached\"); }"
	first := soulboxCode(t, dir, "cpp", src, "")
	second := soulboxCode(t, dir, "cpp", src, "")
	if first.Compile == nil || first.Compile.Cached || second.Compile == nil || !second.Compile.Cached || second.Stdout != "cached\n" {
		t.Errorf("first compile %+v, second %+v (stdout %q): want a miss then a hit", first.Compile, second.Compile, second.Stdout)
	}
	other := soulboxCode(t, dir, "cpp", src+"\n", "")
	if other.Compile.Cached {
		t.Error("a different source hit the cache")
	}
}

// TestCodeStdinSources: code from stdin ("-") with program input from --stdin.
func TestCodeStdinSources(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	in := filepath.Join(t.TempDir(), "in")
	os.WriteFile(in, []byte("7\n"), 0o644)
	cmd := exec.Command(soulboxBin, "run", "--data-dir", dir, "--lang", "python", "--stdin", in, "-")
	cmd.Stdin = strings.NewReader("print(int(input()) * 6)")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "42\n" {
		t.Errorf("got %q (%v), want 42", out, err)
	}
	// Without --json, the exit status is the program's; a compile error is 1.
	cmd = exec.Command(soulboxBin, "run", "--data-dir", dir, "--lang", "c", "-")
	cmd.Stdin = strings.NewReader("int main(void) { return x; }")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "error") {
		t.Errorf("compile error: exit %d output %q", cmd.ProcessState.ExitCode(), out)
	}
}

// TestScenarioEducation: a student's recursive Fibonacci under 50 MB, 10%
// of a CPU and 5 s is OK; the same with an infinite loop is TLE.
func TestScenarioEducation(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	limits := []string{"--memory", "50M", "--cpus", "0.1", "--timeout", "5s"}
	fib := "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib(20))\n"
	res := soulboxCode(t, dir, "python", fib, "", limits...)
	if res.Status != "OK" || res.Stdout != "6765\n" {
		t.Errorf("fibonacci: %s %q %q", res.Status, res.Stdout, res.Stderr)
	}
	res = soulboxCode(t, dir, "python", fib+"while True:\n    pass\n", "", limits...)
	if res.Status != "TLE" {
		t.Errorf("infinite loop: %s, want TLE", res.Status)
	}
	hostClean(t, dir)
}

// TestScenarioDataAnalysis: pandas + matplotlib saving a chart; the PNG
// comes back as an artifact, inline and written to --artifacts-dir.
func TestScenarioDataAnalysis(t *testing.T) {
	requireRoot(t)
	requireLang(t, "python3")
	if exec.Command("/usr/bin/python3", "-c", "import pandas, matplotlib").Run() != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3-pandas and python3-matplotlib are not installed, and CI=true")
		}
		t.Skip("python3-pandas and python3-matplotlib are not installed")
	}
	dir := dataDir(t)
	out := filepath.Join(t.TempDir(), "artifacts")
	src := `
import pandas as pd
import matplotlib.pyplot as plt
df = pd.DataFrame({"month": ["Jan", "Feb", "Mar"], "sales": [10, 30, 20]})
print(df["sales"].sum())
df.plot(x="month", y="sales", kind="bar")
plt.savefig("chart.png")
df.to_csv("sales.csv", index=False)
`
	res := soulboxCode(t, dir, "python", src, "", "--memory", "1G", "--timeout", "120s", "--cpu-time", "120s", "--inline-max", "1M", "--artifacts-dir", out)
	if res.Status != "OK" || res.Stdout != "60\n" {
		t.Fatalf("%s stdout %q stderr %s", res.Status, res.Stdout, res.Stderr)
	}
	var png, csv bool
	for _, a := range res.Artifacts {
		switch a.Path {
		case "chart.png":
			b, _ := base64.StdEncoding.DecodeString(a.ContentBase64)
			png = a.MimeType == "image/png" && bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) && int64(len(b)) == a.Size
			onDisk, _ := os.ReadFile(filepath.Join(out, "chart.png"))
			if !bytes.Equal(onDisk, b) || a.SavedTo == "" {
				t.Errorf("chart.png in --artifacts-dir: %d bytes, saved_to %q", len(onDisk), a.SavedTo)
			}
		case "sales.csv":
			b, _ := base64.StdEncoding.DecodeString(a.ContentBase64)
			csv = a.MimeType == "text/csv" && string(b) == "month,sales\nJan,10\nFeb,30\nMar,20\n"
		default:
			t.Errorf("unexpected artifact %s", a.Path)
		}
	}
	if !png || !csv {
		t.Errorf("artifacts %+v: want chart.png (image/png) and sales.csv", res.Artifacts)
	}
}

// TestArtifactsHostile: links, FIFOs, sockets and unreadable files in the
// working directory; only regular files come back, never a link's target.
func TestArtifactsHostile(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	out := filepath.Join(t.TempDir(), "artifacts")
	src := `
ln -s /etc/passwd passwd-link
ln -s / rootdir
mkfifo fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
printf secret > private; chmod 000 private
mkdir -p deep/er; printf x > deep/er/file
printf big > big.bin
`
	res := soulboxCode(t, dir, "bash", src, "", "--artifacts-dir", out)
	if res.Status != "OK" {
		t.Fatalf("%s: %s", res.Status, res.Stderr)
	}
	var got []string
	for _, a := range res.Artifacts {
		got = append(got, a.Path)
	}
	if strings.Join(got, ",") != "big.bin,deep/er/file,private" {
		t.Errorf("artifacts %v, want only the regular files big.bin, deep/er/file, private", got)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if !e.Type().IsRegular() && !e.IsDir() {
			t.Errorf("%s in --artifacts-dir is not a regular file or directory", e.Name())
		}
	}
	// Caps: more files than allowed.
	res = soulboxCode(t, dir, "bash", "for i in $(seq 1 20); do echo $i > f$i; done", "", "--artifacts-max-files", "5")
	if len(res.Artifacts) != 5 {
		t.Errorf("%d artifacts, want the cap of 5", len(res.Artifacts))
	}
	hostClean(t, dir)
}

// TestLanguagesCommand: every language is listed, with its version when
// available and how to get it when not; Julia comes from its template.
func TestLanguagesCommand(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	out, err := exec.Command(soulboxBin, "languages", "--json", "--data-dir", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	var infos []struct {
		Name      string `json:"name"`
		Available bool   `json:"available"`
		Version   string `json:"version"`
		Hint      string `json:"hint"`
		Template  string `json:"template"`
	}
	if err := json.Unmarshal(out, &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 14 {
		t.Errorf("%d languages listed, want 14", len(infos))
	}
	for _, i := range infos {
		switch {
		case i.Name == "julia" && juliaImported():
			if !i.Available || i.Template != "julia" || !strings.HasPrefix(i.Version, "julia version 1.") {
				t.Errorf("julia, its template imported: %+v", i)
			}
		case i.Name == "julia":
			if i.Available || !strings.Contains(i.Hint, "make template-julia") {
				t.Errorf("julia without its template: %+v", i)
			}
		case i.Available && i.Version == "":
			t.Errorf("%s: available without a version", i.Name)
		case !i.Available && !strings.Contains(i.Hint, "apt-get install"):
			t.Errorf("%s: unavailable without how to get it: %+v", i.Name, i)
		}
	}
}

// TestLanguagesAPI: GET /v1/languages (through the Go SDK) lists the
// registry as the CLI does, versions probed inside sandboxes.
func TestLanguagesAPI(t *testing.T) {
	requireRoot(t)
	d, c := sdkDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	langs, err := c.Languages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(langs) != 14 {
		t.Fatalf("%d languages, want 14", len(langs))
	}
	byName := map[string]soulbox.Language{}
	for _, l := range langs {
		byName[l.Name] = l
	}
	if py := byName["python"]; !py.Available || !strings.HasPrefix(py.Version, "Python 3.") || py.Template != "" {
		t.Errorf("python: %+v", py)
	}
	if py := byName["python"]; py.Source != "main.py" || len(py.Compile) != 0 || strings.Join(py.Run, " ") != "python3 main.py" ||
		len(py.JudgeRun) != 5 || py.JudgeRun[1] != "-S" || py.JudgeRun[4] != "main.py" {
		t.Errorf("python steps: source %q, compile %q, run %q, judge_run %q", py.Source, py.Compile, py.Run, py.JudgeRun)
	}
	if cpp := byName["cpp"]; !cpp.Compiled || cpp.Source != "main.cpp" || cpp.Compile[0] != "g++" || strings.Join(cpp.Run, " ") != "./main" || cpp.JudgeRun != nil {
		t.Errorf("cpp: %+v, want compiled by g++, run as ./main", cpp)
	}
	if jl := byName["julia"]; jl.Template != "julia" || jl.Available != juliaImported() {
		t.Errorf("julia: %+v (template imported: %v)", jl, juliaImported())
	}
	// A second call is answered from the same probe.
	again, err := c.Languages(ctx)
	if err != nil || len(again) != len(langs) || again[0].Version != langs[0].Version {
		t.Errorf("second call: %d languages, %v", len(again), err)
	}
	// Without an API key: 401.
	if st := d.call("", "GET", "/v1/languages", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("without a key: status %d, want 401", st)
	}
}
