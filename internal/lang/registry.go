// Package lang runs source code in the languages SoulBox supports: a
// registry kept as data (file name, optional compile step, run step,
// version command, where to get the runtime), and an Executor that
// compiles in one sandbox run, caches the compiled files by content hash,
// and runs the program in another, returning the files it writes.
//
// It holds no CLI or API logic: `soulbox run --lang`, `soulbox judge` and,
// later, the daemon's execute_code call it with a runtime.
package lang

import (
	_ "embed"
	"sort"
	"strings"
)

// Language is one entry of the registry. Argv entries are run in the
// sandbox's working directory (/home/user), where the source was copied as
// Source. A compile step leaves its output in that directory; every file it
// creates or modifies there is copied into the run's sandbox.
type Language struct {
	Name    string   // canonical name, e.g. "cpp"
	Title   string   // e.g. "C++"
	Aliases []string // other accepted names and file extensions, e.g. "c++", "cc"
	Source  string   // file name the source is saved as, e.g. "main.cpp"
	Compile []string // nil for interpreted languages
	Run     []string
	// JudgeRun replaces Run in judge mode (test cases, interactors), where
	// a start-up saved counts once per case; nil: Run.
	JudgeRun []string
	Version  []string // prints the version (first non-empty line of its output)
	// Tool is the executable whose presence means the language is
	// available (the compiler for compiled languages).
	Tool string
	// Env is added to both steps (caches and temp dirs inside the sandbox).
	Env []string
	// Extra files copied next to the source for the compile step (e.g.
	// TypeScript's declarations of Node's globals).
	Extra map[string]string
	// Packages are the Debian 12 packages that provide it on the host
	// template; empty when Debian does not package it.
	Packages []string
	// Template names a template that must provide the language when the
	// host cannot (Julia); Note says how to get it.
	Template string
	Note     string
}

// Compiled reports whether the language has a compile step.
func (l *Language) Compiled() bool { return len(l.Compile) > 0 }

// commonEnv keeps every cache and temp file out of the working directory,
// so only what the program itself writes there comes back as artifacts.
var commonEnv = []string{
	"XDG_CACHE_HOME=/tmp/.cache", "XDG_CONFIG_HOME=/tmp/.config", "XDG_DATA_HOME=/tmp/.local/share",
	"MPLCONFIGDIR=/tmp/.matplotlib", "MPLBACKEND=Agg", "PYTHONDONTWRITEBYTECODE=1",
}

// compileEnv is added to compile steps: HOME in /tmp so compilers'
// caches (javac, mcs, rustc) never land in the working directory.
var compileEnv = []string{"HOME=/tmp"}

//go:embed node-globals.d.ts
var nodeGlobals string

// pythonJudge is the loader the judge runs Python programs with (see the
// file): `python3 -S -c pythonJudge main.py`.
//
//go:embed judge-python.py
var pythonJudge string

// registry is the data. Order is the listing order.
var registry = []Language{
	{
		Name: "python", Title: "Python", Aliases: []string{"python3", "py"}, Source: "main.py",
		Run: []string{"python3", "main.py"}, Version: []string{"python3", "--version"}, Tool: "python3",
		JudgeRun: []string{"python3", "-S", "-c", pythonJudge, "main.py"},
		Packages: []string{"python3", "python3-numpy", "python3-pandas", "python3-matplotlib"},
	},
	{
		Name: "javascript", Title: "JavaScript (Node.js)", Aliases: []string{"js", "node", "nodejs"}, Source: "main.js",
		Run: []string{"node", "main.js"}, Version: []string{"node", "--version"}, Tool: "node",
		Packages: []string{"nodejs"},
	},
	{
		Name: "typescript", Title: "TypeScript (on Node.js)", Aliases: []string{"ts"}, Source: "main.ts",
		Compile: []string{"tsc", "--target", "es2020", "--module", "commonjs", "--lib", "es2020,dom",
			"--esModuleInterop", "--skipLibCheck", "--pretty", "false", "--outDir", ".", "main.ts", "node-globals.d.ts"},
		Run: []string{"node", "main.js"}, Version: []string{"tsc", "--version"}, Tool: "tsc",
		Extra:    map[string]string{"node-globals.d.ts": nodeGlobals},
		Packages: []string{"nodejs", "node-typescript"},
		Note:     "Node's APIs are declared as `any` (Debian 12 does not package @types/node); modules are loaded with require semantics",
	},
	{
		Name: "ruby", Title: "Ruby", Aliases: []string{"rb"}, Source: "main.rb",
		Run: []string{"ruby", "main.rb"}, Version: []string{"ruby", "--version"}, Tool: "ruby",
		Packages: []string{"ruby"},
	},
	{
		Name: "go", Title: "Go", Aliases: []string{"golang"}, Source: "main.go",
		Compile: []string{"go", "build", "-o", "main", "main.go"},
		Run:     []string{"./main"}, Version: []string{"go", "version"}, Tool: "go",
		Env:      []string{"GOCACHE=/tmp/.cache/go-build", "GOPATH=/tmp/go", "GO111MODULE=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local", "CGO_ENABLED=0"},
		Packages: []string{"golang-go"},
	},
	{
		Name: "rust", Title: "Rust", Aliases: []string{"rs"}, Source: "main.rs",
		Compile: []string{"rustc", "--edition", "2021", "-O", "-o", "main", "main.rs"},
		Run:     []string{"./main"}, Version: []string{"rustc", "--version"}, Tool: "rustc",
		Packages: []string{"rustc"},
	},
	{
		Name: "java", Title: "Java", Source: "Main.java",
		Compile: []string{"javac", "-J-XX:+UseSerialGC", "-J-Xshare:auto", "-encoding", "UTF-8", "Main.java"},
		Run:     []string{"java", "-XX:+UseSerialGC", "-Xshare:auto", "-cp", ".", "Main"}, Version: []string{"javac", "-version"}, Tool: "javac",
		Packages: []string{"default-jdk-headless"},
		Note:     "the public class must be Main",
	},
	{
		Name: "csharp", Title: "C# (Mono)", Aliases: []string{"cs", "c#", "mono"}, Source: "main.cs",
		Compile: []string{"mcs", "-optimize+", "-out:main.exe", "main.cs"},
		Run:     []string{"mono", "main.exe"}, Version: []string{"mcs", "--version"}, Tool: "mcs",
		Packages: []string{"mono-mcs", "mono-runtime"},
	},
	{
		Name: "php", Title: "PHP", Source: "main.php",
		Run: []string{"php", "main.php"}, Version: []string{"php", "--version"}, Tool: "php",
		Packages: []string{"php-cli"},
	},
	{
		Name: "bash", Title: "Shell (bash)", Aliases: []string{"sh", "shell"}, Source: "main.sh",
		Run: []string{"bash", "main.sh"}, Version: []string{"bash", "--version"}, Tool: "bash",
		Packages: []string{"bash"},
	},
	{
		Name: "r", Title: "R", Aliases: []string{"rscript"}, Source: "main.R",
		Run: []string{"Rscript", "--vanilla", "main.R"}, Version: []string{"Rscript", "--version"}, Tool: "Rscript",
		Packages: []string{"r-base-core"},
	},
	{
		Name: "c", Title: "C", Source: "main.c",
		Compile: []string{"gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "-lm"},
		Run:     []string{"./main"}, Version: []string{"gcc", "--version"}, Tool: "gcc",
		Packages: []string{"gcc"},
	},
	{
		Name: "cpp", Title: "C++", Aliases: []string{"c++", "cc", "cxx"}, Source: "main.cpp",
		Compile: []string{"g++", "-O2", "-std=gnu++17", "-pipe", "-o", "main", "main.cpp"},
		Run:     []string{"./main"}, Version: []string{"g++", "--version"}, Tool: "g++",
		Packages: []string{"g++"},
	},
	{
		Name: "julia", Title: "Julia", Aliases: []string{"jl"}, Source: "main.jl",
		Run: []string{"julia", "--startup-file=no", "main.jl"}, Version: []string{"julia", "--version"}, Tool: "julia",
		Template: "julia",
		Note:     "Debian 12 does not package Julia: it runs in the julia template (Julia 1.5.3 from Debian 11's packages), which `make template-julia` builds and imports",
	},
}

// All returns the registry, in listing order. The entries are shared:
// callers must not modify them.
func All() []*Language {
	out := make([]*Language, len(registry))
	for i := range registry {
		out[i] = &registry[i]
	}
	return out
}

// Lookup finds a language by name, alias or file extension, ignoring case.
func Lookup(name string) (*Language, bool) {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "."))
	for i := range registry {
		l := &registry[i]
		if l.Name == n || strings.EqualFold(l.Title, n) {
			return l, true
		}
		for _, a := range l.Aliases {
			if a == n {
				return l, true
			}
		}
	}
	return nil, false
}

// Names lists every canonical name, sorted.
func Names() []string {
	var n []string
	for i := range registry {
		n = append(n, registry[i].Name)
	}
	sort.Strings(n)
	return n
}

// JudgeArgv is the run step in judge mode.
func (l *Language) JudgeArgv() []string {
	if l.JudgeRun != nil {
		return l.JudgeRun
	}
	return l.Run
}

// RunEnv is the environment of the language's run step ("KEY=VALUE"
// entries): the common cache and temp settings plus the language's own.
func (l *Language) RunEnv() []string {
	return append(append([]string{}, commonEnv...), l.Env...)
}

// CompileEnv is the environment of the language's compile step.
func (l *Language) CompileEnv() []string {
	return append(l.RunEnv(), compileEnv...)
}
