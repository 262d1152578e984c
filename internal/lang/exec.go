package lang

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Runner runs one sandboxed program; *runtime.Runtime is one.
type Runner interface {
	Run(ctx context.Context, s sbrt.Spec) (*sbrt.Result, error)
}

var _ Runner = (*sbrt.Runtime)(nil)

// Executor compiles and runs programs. It is safe for concurrent use.
type Executor struct {
	Runner Runner
	// CacheDir holds compiled output by content hash; "" disables the
	// cache. Entries are tar files named by their key, written atomically.
	CacheDir string
	// CompileLimits apply to compile steps (see DefaultCompileLimits).
	CompileLimits limits.Limits
	// HostRoot is where the host template's /usr is looked up ("/").
	HostRoot string
	// Images holds the templates some languages need (Julia; the zero
	// value: this host's).
	Images image.Store
	Log    *slog.Logger
}

// DefaultCompileLimits are generous: compilers are large, and the output is
// capped separately.
func DefaultCompileLimits() limits.Limits {
	l := limits.Defaults()
	l.MemoryBytes = 2 << 30
	l.CPUs = float64(runtime.NumCPU())
	l.CPUTime = 60 * time.Second
	l.WallTime = 60 * time.Second
	l.OutputBytes = 1 << 20
	l.DiskBytes = 1 << 30
	l.FileBytes = 512 << 20
	return l
}

// compileCollect caps what a compile step may hand to the run.
func compileCollect() sbrt.Collect { return sbrt.Collect{MaxFiles: 1000, MaxBytes: 256 << 20} }

// CompileStatus is the outcome of a compile step: OK, CE (the compiler
// failed), or a limit verdict of the compile run (TLE, MLE, OLE, ...),
// which also counts as a compile error.
type CompileReport struct {
	Status   string
	Stdout   string
	Stderr   string
	Duration time.Duration
	Cached   bool
}

// ErrUnavailable is returned for a language whose runtime is missing.
var ErrUnavailable = errors.New("language runtime not available")

// Program is a source prepared to run: compiled (if needed) and ready to
// be copied into any number of runs.
type Program struct {
	Lang    *Language
	Files   []sbrt.CopyIn  // copied into every run
	Compile *CompileReport // nil for interpreted languages
	env     []string
}

// OK reports whether the program can run (it compiled, or needs no compile).
func (p *Program) OK() bool { return p.Compile == nil || p.Compile.Status == "OK" }

// Spec is the run spec of the program with the given limits and stdin.
func (p *Program) Spec(l limits.Limits, stdin io.Reader) sbrt.Spec {
	return sbrt.Spec{Argv: p.Lang.Run, Env: p.env, Limits: l, Stdin: stdin, CopyIn: p.Files, Template: p.Lang.Template}
}

// JudgeSpec is Spec with the language's judge-mode run step.
func (p *Program) JudgeSpec(l limits.Limits, stdin io.Reader) sbrt.Spec {
	s := p.Spec(l, stdin)
	s.Argv = p.Lang.JudgeArgv()
	return s
}

// Prepare makes a Program of source: interpreted languages only copy it;
// compiled ones compile it in a sandbox of their own (or take the output
// from the cache). A compile failure is not an error: it is reported in
// Program.Compile.
func (e *Executor) Prepare(ctx context.Context, l *Language, source []byte) (*Program, error) {
	if st := e.Status(l); !st.Available {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, l.Name, st.Hint)
	}
	env := append(append([]string{}, commonEnv...), l.Env...)
	src := sbrt.CopyIn{Name: l.Source, Data: source, Mode: 0o644}
	if !l.Compiled() {
		return &Program{Lang: l, Files: []sbrt.CopyIn{src}, env: env}, nil
	}
	var key string
	if e.CacheDir != "" {
		key = e.cacheKey(l, source)
		if files, ok := e.cacheGet(key); ok {
			return &Program{Lang: l, Files: files, env: env, Compile: &CompileReport{Status: "OK", Cached: true}}, nil
		}
	}
	in := []sbrt.CopyIn{src}
	for name, body := range l.Extra {
		in = append(in, sbrt.CopyIn{Name: name, Data: []byte(body), Mode: 0o644})
	}
	cl := e.CompileLimits
	if cl == (limits.Limits{}) {
		cl = DefaultCompileLimits()
	}
	c := compileCollect()
	t0 := time.Now()
	res, err := e.Runner.Run(ctx, sbrt.Spec{
		Argv: l.Compile, Env: append(append([]string{}, env...), compileEnv...),
		Limits: cl, CopyIn: in, Collect: &c, Template: l.Template,
	})
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	rep := &CompileReport{Status: "OK", Stdout: string(res.Stdout), Stderr: string(res.Stderr), Duration: time.Since(t0)}
	p := &Program{Lang: l, env: env, Compile: rep}
	switch {
	case res.Status == sbrt.StatusRE || res.Status == sbrt.StatusSG:
		rep.Status = "CE"
		return p, nil
	case res.Status != sbrt.StatusOK:
		rep.Status = string(res.Status)
		return p, nil
	case res.FilesTruncated:
		rep.Status = "CE"
		rep.Stderr += "soulbox: the compiler's output is over the size cap\n"
		return p, nil
	case res.FilesError != "":
		// Part of the output is missing: running it would fail in ways
		// that blame the submission.
		return nil, fmt.Errorf("compile: collecting the compiler's output: %s", res.FilesError)
	}
	for _, f := range res.Files {
		p.Files = append(p.Files, sbrt.CopyIn{Name: f.Path, Data: f.Data, Mode: os.FileMode(f.Mode)})
	}
	if len(p.Files) == 0 {
		rep.Status = "CE"
		rep.Stderr += "soulbox: the compiler produced no output\n"
		return p, nil
	}
	if key != "" {
		if err := e.cachePut(key, res.Files); err != nil && e.Log != nil {
			e.Log.Warn("compile cache", "err", err)
		}
	}
	return p, nil
}

// Status is whether a language can run here, and how to get it if not.
type Status struct {
	Available bool
	Path      string // the tool found on the host template
	Hint      string // how to get it, when unavailable
}

// rootOf is where the language's sandboxes find their /usr on the host:
// the host's root, or the root of the image its template is made of.
func (e *Executor) rootOf(l *Language) (string, error) {
	if l.Template != "" {
		return e.Images.Root(l.Template)
	}
	if e.HostRoot == "" {
		return "/", nil
	}
	return e.HostRoot, nil
}

// Status looks for the language's tool where its sandboxes see it: the
// host's /usr (/usr/local and per-user installs are not part of the host
// template), or the /usr of its template's image.
func (e *Executor) Status(l *Language) Status {
	root, err := e.rootOf(l)
	if err != nil {
		return Status{Hint: l.Note}
	}
	for _, dir := range []string{"usr/bin", "usr/sbin"} {
		p := filepath.Join(root, dir, l.Tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return Status{Available: true, Path: "/" + dir + "/" + l.Tool}
		}
	}
	if l.Template != "" {
		return Status{Hint: "the " + l.Template + " template has no " + l.Tool + " in /usr/bin: " + l.Note}
	}
	return Status{Hint: "install the Debian package(s): apt-get install " + joinSpace(l.Packages)}
}

func joinSpace(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
