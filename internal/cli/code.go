package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/artifact"
	"github.com/soulbox-dev/soulbox/internal/judge"
	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/quickrun"
	"github.com/soulbox-dev/soulbox/internal/runtime"
)

// maxSource caps a source file read by the CLI.
const maxSource = 16 << 20

// codeFlags are the flags of `soulbox run --lang`.
type codeFlags struct {
	lang, artifactsDir, inlineMax, artifactsMax string
	maxFiles                                    int
}

func (f *codeFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.lang, "lang", "", "run FILE (or - for stdin) as source code in this language (see soulbox languages)")
	fl.StringVar(&f.artifactsDir, "artifacts-dir", "", "with --lang: write the files the program creates to this host directory")
	fl.StringVar(&f.inlineMax, "inline-max", "64K", "with --lang --json: inline artifacts up to this size as base64")
	fl.StringVar(&f.artifactsMax, "artifacts-max", "64M", "with --lang: total size of the artifacts brought out of the sandbox")
	fl.IntVar(&f.maxFiles, "artifacts-max-files", 100, "with --lang: number of artifacts brought out of the sandbox")
}

// newExecutor builds the language executor over a fresh runtime.
func newExecutor(cmd *cobra.Command, dataDir string) (*lang.Executor, error) {
	rt, err := runtime.New(cmd.Context(), runtime.Config{DataDir: dataDir, Logger: logger(cmd)})
	if err != nil {
		return nil, err
	}
	return &lang.Executor{Runner: rt, CacheDir: filepath.Join(dataDir, "cache", "compile"), Log: logger(cmd)}, nil
}

func lookupLang(name string) (*lang.Language, error) {
	l, ok := lang.Lookup(name)
	if !ok {
		return nil, usageErrorf("unknown language %q (known: %s)", name, strings.Join(lang.Names(), ", "))
	}
	return l, nil
}

// readSource reads a source file, or stdin for "-", with a size cap.
func readSource(cmd *cobra.Command, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSource+1))
	if err != nil {
		return nil, usageErrorf("read source: %v", err)
	}
	if len(b) > maxSource {
		return nil, usageErrorf("source larger than %d bytes", maxSource)
	}
	return b, nil
}

// compileJSON is the "compile" object of the JSON results.
type compileJSON struct {
	Status string  `json:"status"`
	Stdout string  `json:"stdout"`
	Stderr string  `json:"stderr"`
	MS     float64 `json:"ms"`
	Cached bool    `json:"cached"`
}

func compileOf(c *lang.CompileReport) *compileJSON {
	if c == nil {
		return nil
	}
	return &compileJSON{Status: c.Status, Stdout: c.Stdout, Stderr: c.Stderr, MS: float64(c.Duration.Microseconds()) / 1000, Cached: c.Cached}
}

func runCode(cmd *cobra.Command, file string, l limits.Limits, stdinFile string, asJSON bool, dataDir string, f *codeFlags) error {
	lg, err := lookupLang(f.lang)
	if err != nil {
		return err
	}
	inline, err := limits.ParseBytes(f.inlineMax)
	if err != nil {
		return usageErrorf("--inline-max: %v", err)
	}
	maxBytes, err := limits.ParseBytes(f.artifactsMax)
	if err != nil {
		return usageErrorf("--artifacts-max: %v", err)
	}
	src, err := readSource(cmd, file)
	if err != nil {
		return err
	}
	req := lang.Request{Lang: lg, Source: src, Limits: l, Collect: runtime.Collect{MaxFiles: f.maxFiles, MaxBytes: maxBytes}}
	switch {
	case stdinFile != "":
		sf, err := os.Open(stdinFile)
		if err != nil {
			return usageErrorf("--stdin: %v", err)
		}
		defer sf.Close()
		req.Stdin = sf
	case file != "-":
		req.Stdin = cmd.InOrStdin()
	}
	if !asJSON {
		req.Stdout, req.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
	}
	ex, err := newExecutor(cmd, dataDir)
	if err != nil {
		return runFailure(cmd, asJSON, err)
	}
	out, err := ex.Execute(cmd.Context(), req)
	if err != nil {
		switch {
		case errors.Is(err, lang.ErrUnavailable):
			return &exitError{code: exitFailure, err: err}
		case errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid):
			return &exitError{code: exitUsage, err: err}
		}
		return runFailure(cmd, asJSON, err)
	}
	var arts []artifact.Artifact
	var saveErr error
	if out.Result != nil {
		arts = artifact.Describe(out.Result.Files, inline)
		if f.artifactsDir != "" {
			saveErr = artifact.Save(f.artifactsDir, out.Result.Files, arts, maxBytes)
		}
	}
	if saveErr != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "soulbox: artifacts: %v\n", saveErr)
	}
	if asJSON {
		return writeCodeJSON(cmd.OutOrStdout(), out, arts)
	}
	if out.Result == nil {
		fmt.Fprint(cmd.ErrOrStderr(), out.Compile.Stdout, out.Compile.Stderr)
		return &exitError{code: exitFailure, err: fmt.Errorf("compile error (%s)", out.Compile.Status)}
	}
	res := out.Result
	if res.Status != runtime.StatusOK && res.Status != runtime.StatusRE {
		fmt.Fprintf(cmd.ErrOrStderr(), "soulbox: %s\n", quickrun.Describe(res))
	}
	if res.ExitCode != 0 {
		return &exitError{code: res.ExitCode, err: errors.New("")}
	}
	return nil
}

// writeCodeJSON prints the run's JSON object with the language, compile
// and artifacts fields added.
func writeCodeJSON(w io.Writer, out *lang.Outcome, arts []artifact.Artifact) error {
	if arts == nil {
		arts = []artifact.Artifact{}
	}
	extra := map[string]any{"language": out.Lang.Name, "compile": compileOf(out.Compile), "artifacts": arts}
	var base map[string]any
	if out.Result == nil {
		base = map[string]any{
			"status": "CE", "exit_code": -1, "signal": nil, "stdout": "", "stderr": "",
			"stdout_truncated": false, "stderr_truncated": false, "wall_ms": 0, "cpu_ms": 0, "peak_memory_bytes": 0,
		}
	} else {
		var b bytes.Buffer
		if err := out.Result.WriteJSON(&b); err != nil {
			return err
		}
		if err := json.Unmarshal(b.Bytes(), &base); err != nil {
			return err
		}
		extra["artifacts_truncated"] = out.Result.FilesTruncated
		if out.Result.FilesError != "" {
			extra["artifacts_error"] = out.Result.FilesError
		}
	}
	for k, v := range extra {
		base[k] = v
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(base)
}

func newLanguagesCmd() *cobra.Command {
	var (
		asJSON  bool
		dataDir string
	)
	c := &cobra.Command{
		Use:   "languages",
		Short: "List the languages soulbox run --lang and soulbox judge support, with installed versions",
		Long: `List every language of the registry: whether its runtime is available to
sandboxes of the host template (found in the host's /usr), and the version
its version command prints when run inside a sandbox. An unavailable
language is listed with the Debian package that provides it. Probing
versions needs root; without it, versions are left out.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var infos []lang.Info
			ex, err := newExecutor(cmd, dataDir)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "soulbox: versions not probed: %v\n", err)
				ex = &lang.Executor{}
				for _, l := range lang.All() {
					st := ex.Status(l)
					infos = append(infos, lang.Info{Name: l.Name, Title: l.Title, Aliases: l.Aliases, Compiled: l.Compiled(), Available: st.Available, Hint: st.Hint, Note: l.Note})
				}
			} else {
				infos = ex.Probe(cmd.Context())
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(infos)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLANGUAGE\tAVAILABLE\tVERSION / HOW TO GET IT")
			for _, i := range infos {
				detail := i.Version
				avail := "yes"
				if !i.Available {
					avail, detail = "no", i.Hint
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", i.Name, i.Title, avail, detail)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	c.Flags().StringVar(&dataDir, "data-dir", defaultDataDir, "SoulBox data directory")
	return c
}

func newJudgeCmd() *cobra.Command {
	var (
		lf       limitFlags
		langName string
		tests    string
		compare  string
		parallel int
		fresh    bool
		asJSON   bool
		dataDir  string
		it       interactorFlags
	)
	c := &cobra.Command{
		Use:   "judge --lang LANG --tests DIR [flags] SOURCE",
		Short: "Judge a submission against test cases (needs root)",
		Long: `Compile SOURCE once, run it against every test case of DIR (NAME.in is its
stdin, NAME.out the expected stdout; optional NAME.limits is a JSON object
overriding limits for that case, e.g. {"timeout":"2s","memory":"64M"}),
each as a fresh process with its own limits, and give a verdict per case:
AC, WA, TLE, MLE, RE, OLE. Cases run in a worker sandbox set up once and
cleaned between cases (every process killed; home, /tmp, /var/tmp,
/dev/shm emptied; the program placed again; cgroup counters reset);
--fresh-sandboxes gives every case a sandbox of its own instead. The overall verdict is the first case (in natural order of NAME) that
is not AC, AC if all are, or CE when SOURCE does not compile.

Exit status: 0 for AC, 1 for any other verdict, 2 for bad usage, 125 when a
sandbox could not be set up. --json prints {"verdict","language","compile",
"cases":[{"name","verdict","status","exit_code","time_ms","wall_ms",
"memory_bytes"}]} where time_ms is CPU time.

Interactive problems: --interactor FILE --interactor-lang LANG runs, for
each case, the submission and the interactor at once, each in a sandbox of
its own: the submission's stdout is the interactor's stdin and the
interactor's stdout the submission's stdin. The interactor finds NAME.in as
input.txt and NAME.out (optional here) as answer.txt in its home directory, and is called
with the arguments input.txt output.txt answer.txt (as testlib's
interactors expect). Its exit status decides: 0 AC, 1 WA, 2 PE; any other
status, a signal or a limit of its own is JE (judge error), not the
submission's fault. The submission's TLE, MLE and OLE come first, then JE,
then the submission's RE. --interactor-limits takes a JSON object as the
.limits files do (default: the default limits, 30 s wall time); keep its
timeout above the submission's so a deadlock is the submission's TLE.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("give exactly one SOURCE file (or - for stdin)")
			}
			if langName == "" || tests == "" {
				return usageErrorf("--lang and --tests are required")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lf.resolve()
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if err := l.Validate(limits.Maximums()); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			lg, err := lookupLang(langName)
			if err != nil {
				return err
			}
			cmp, err := judge.ParseCompare(compare)
			if err != nil {
				return usageErrorf("--compare: %v", err)
			}
			if parallel < 1 {
				return usageErrorf("--parallel must be at least 1")
			}
			inter, err := it.resolve()
			if err != nil {
				return err
			}
			load := judge.LoadCases
			if inter != nil {
				load = judge.LoadInteractiveCases
			}
			cases, err := load(tests, l)
			if err != nil {
				return usageErrorf("--tests: %v", err)
			}
			src, err := readSource(cmd, args[0])
			if err != nil {
				return err
			}
			ex, err := newExecutor(cmd, dataDir)
			if err != nil {
				return runFailure(cmd, asJSON, err)
			}
			rep, err := judge.Judge(cmd.Context(), ex, lg, src, cases, judge.Options{Limits: l, Compare: cmp, Parallel: parallel, FreshSandboxes: fresh, Interactor: inter})
			if err != nil {
				switch {
				case errors.Is(err, lang.ErrUnavailable):
					return &exitError{code: exitFailure, err: err}
				case errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid) || errors.Is(err, judge.ErrInteractor):
					return &exitError{code: exitUsage, err: err}
				}
				return &exitError{code: exitInternal, err: err}
			}
			if asJSON {
				cs := rep.Cases
				if cs == nil {
					cs = []judge.CaseResult{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetEscapeHTML(false)
				if err := enc.Encode(map[string]any{"verdict": rep.Verdict, "language": lg.Name, "compile": compileOf(rep.Compile), "cases": cs}); err != nil {
					return err
				}
			} else {
				if rep.Verdict == judge.CE {
					fmt.Fprint(cmd.ErrOrStderr(), rep.Compile.Stdout, rep.Compile.Stderr)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CASE\tVERDICT\tCPU ms\tWALL ms\tMEMORY")
				for _, cr := range rep.Cases {
					fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\n", cr.Name, cr.Verdict, cr.TimeMS, cr.WallMS, limits.FormatBytes(cr.MemoryBytes))
				}
				tw.Flush()
				for _, cr := range rep.Cases {
					if cr.Interactor != nil && cr.Verdict != judge.AC {
						fmt.Fprintf(cmd.ErrOrStderr(), "case %s: interactor %s (exit %d): %s\n", cr.Name, cr.Interactor.Status, cr.Interactor.ExitCode, strings.TrimSpace(cr.Interactor.Stderr))
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), "verdict:", rep.Verdict)
			}
			if rep.Verdict != judge.AC {
				return &exitError{code: exitFailure, err: errors.New("")}
			}
			return nil
		},
	}
	lf.register(c)
	fl := c.Flags()
	fl.StringVar(&langName, "lang", "", "language of SOURCE (see soulbox languages)")
	fl.StringVar(&tests, "tests", "", "directory of NAME.in / NAME.out test cases")
	fl.StringVar(&compare, "compare", "lines", "output comparison: exact, lines (ignore trailing whitespace), tokens, float:EPS")
	fl.IntVar(&parallel, "parallel", 1, "cases run at the same time")
	fl.BoolVar(&fresh, "fresh-sandboxes", false, "run every case in a sandbox of its own instead of a worker sandbox cleaned between cases (slower)")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object with the verdicts")
	fl.StringVar(&dataDir, "data-dir", defaultDataDir, "SoulBox data directory")
	it.register(c)
	return c
}

// interactorFlags are soulbox judge's interactive-problem flags.
type interactorFlags struct{ file, lang, limits string }

func (f *interactorFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVar(&f.file, "interactor", "", "interactive problem: source of the interactor program (see the description)")
	fl.StringVar(&f.lang, "interactor-lang", "", "language of --interactor")
	fl.StringVar(&f.limits, "interactor-limits", "", `limits of the interactor as JSON, e.g. {"timeout":"10s","memory":"256M"}`)
}

// resolve returns the interactor asked for, or nil.
func (f *interactorFlags) resolve() (*judge.Interactor, error) {
	if f.file == "" {
		if f.lang != "" || f.limits != "" {
			return nil, usageErrorf("--interactor-lang and --interactor-limits need --interactor")
		}
		return nil, nil
	}
	if f.lang == "" {
		return nil, usageErrorf("--interactor needs --interactor-lang")
	}
	lg, err := lookupLang(f.lang)
	if err != nil {
		return nil, err
	}
	l := limits.Defaults()
	if f.limits != "" {
		if l, err = judge.ParseLimits([]byte(f.limits), l); err != nil {
			return nil, usageErrorf("--interactor-limits: %v", err)
		}
	}
	if err := l.Validate(limits.Maximums()); err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--interactor-limits: %w", err)}
	}
	src, err := os.ReadFile(f.file)
	if err != nil {
		return nil, usageErrorf("--interactor: %v", err)
	}
	if len(src) > maxSource {
		return nil, usageErrorf("--interactor: larger than %d bytes", maxSource)
	}
	return &judge.Interactor{Lang: lg, Source: src, Limits: l}, nil
}
