package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/quickrun"
	"github.com/soulbox-dev/soulbox/internal/runpool"
	"github.com/soulbox-dev/soulbox/internal/runtime"
)

// limitFlags are the resource-limit flags shared by commands that start
// sandboxes. Unset flags keep the defaults.
type limitFlags struct {
	memory, cpus, cpuTime, timeout, pids, output, disk, fileSize, openFiles, stack string
}

func (f *limitFlags) register(c *cobra.Command) {
	d := limits.Defaults()
	fl := c.Flags()
	fl.StringVar(&f.memory, "memory", "", "memory limit, e.g. 256M (default "+limits.FormatBytes(d.MemoryBytes)+")")
	fl.StringVar(&f.cpus, "cpus", "", fmt.Sprintf("CPU quota in cores, e.g. 0.5 (default %g)", d.CPUs))
	fl.StringVar(&f.cpuTime, "cpu-time", "", "CPU time limit, e.g. 2s (default "+d.CPUTime.String()+")")
	fl.StringVar(&f.timeout, "timeout", "", "wall-clock time limit, e.g. 5s (default "+d.WallTime.String()+")")
	fl.StringVar(&f.pids, "pids", "", fmt.Sprintf("maximum processes and threads (default %d)", d.Pids))
	fl.StringVar(&f.output, "output-limit", "", "cap on stdout and on stderr, each, e.g. 1M (default "+limits.FormatBytes(d.OutputBytes)+")")
	fl.StringVar(&f.disk, "disk", "", "size of the writable file system, e.g. 100M (default "+limits.FormatBytes(d.DiskBytes)+")")
	fl.StringVar(&f.fileSize, "file-size", "", "largest file a process may write (default "+limits.FormatBytes(d.FileBytes)+")")
	fl.StringVar(&f.openFiles, "open-files", "", fmt.Sprintf("open file descriptors per process (default %d)", d.OpenFiles))
	fl.StringVar(&f.stack, "stack", "", "stack size limit (default "+limits.FormatBytes(d.StackBytes)+")")
}

// resolve turns the flags into validated-later Limits.
func (f *limitFlags) resolve() (limits.Limits, error) {
	l := limits.Defaults()
	var errs []error
	for _, v := range []struct{ name, value string }{
		{"memory", f.memory}, {"cpus", f.cpus}, {"cpu-time", f.cpuTime}, {"timeout", f.timeout},
		{"pids", f.pids}, {"output-limit", f.output}, {"disk", f.disk}, {"file-size", f.fileSize},
		{"open-files", f.openFiles}, {"stack", f.stack},
	} {
		if v.value == "" {
			continue
		}
		if err := l.Set(v.name, v.value); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", v.name, err))
		}
	}
	return l, errors.Join(errs...)
}

func newRunCmd() *cobra.Command {
	var (
		lf      limitFlags
		nf      netFlags
		ef      egressFlags
		stdin   string
		copyIn  []string
		env     []string
		asJSON  bool
		noPool  bool
		dataDir string
		tmpl    string
		code    codeFlags
	)
	c := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]  |  run --lang LANG [flags] FILE|-",
		Short: "Run one command in a fresh sandbox and report what happened (needs root)",
		Long: `Run one command in a fresh sandbox: new user, mount, pid, network, uts, ipc and
cgroup namespaces, an overlay root of the host's /usr with a curated /etc, a
cgroup with the limits below, seccomp, and no capabilities. The command runs as
uid 1000 "user" in /home/user.

When a daemon (soulbox serve) runs with the same --data-dir, the sandbox is
one the daemon set up ahead of demand (its run pool, cleaned between runs);
runs with
--copy-in, network flags, another --disk size or limits above the defaults,
--template, and --no-pool, set up their own.

Without --json the program's output is passed through and soulbox exits with the
program's exit status. With --json it prints exactly one JSON object:
{"status","exit_code","signal","stdout","stderr","stdout_truncated",
"stderr_truncated","wall_ms","cpu_ms","peak_memory_bytes"} where status is one
of OK RE SG TLE MLE OLE FSE SV XX.

With --lang, FILE (or - for stdin) is source code in that language
(soulbox languages lists them): compiled languages are compiled in a sandbox
of their own first (status CE on failure), then the program runs. The JSON
adds "language", "compile" {status, stdout, stderr, ms, cached} and
"artifacts" (files the program created or modified in /home/user: path,
mime_type, size, content_base64 up to --inline-max, saved_to with
--artifacts-dir).`,
		Args: func(_ *cobra.Command, args []string) error {
			if code.lang != "" {
				if len(args) != 1 {
					return usageErrorf("with --lang give exactly one source FILE, or - for stdin")
				}
				return nil
			}
			if len(args) == 0 {
				return usageErrorf("no command given: soulbox run [flags] -- CMD [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lf.resolve()
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			if code.lang != "" {
				return runCode(cmd, args[0], l, stdin, asJSON, dataDir, &code)
			}
			spec := runtime.Spec{Argv: args, Env: env, Limits: l, Template: tmpl}
			if spec.Egress, err = ef.rules(); err != nil {
				return err
			}
			rcfg := runtime.Config{DataDir: dataDir, Logger: logger(cmd)}
			if spec.Egress != nil {
				ncfg, err := nf.config()
				if err != nil {
					return err
				}
				if rcfg.Net, err = netsetup.New(ncfg); err != nil {
					return usageErrorf("%v", err)
				}
			}
			for _, c := range copyIn {
				name, host, ok := strings.Cut(c, "=")
				if !ok || name == "" || host == "" {
					return usageErrorf("--copy-in %q: want NAME=HOSTPATH", c)
				}
				spec.CopyIn = append(spec.CopyIn, runtime.CopyIn{Name: name, HostPath: host})
			}
			if stdin != "" {
				f, err := os.Open(stdin)
				if err != nil {
					return usageErrorf("--stdin: %v", err)
				}
				defer f.Close()
				spec.Stdin = f
			} else {
				spec.Stdin = cmd.InOrStdin()
			}
			if !asJSON {
				spec.Stdout, spec.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			}
			if !noPool && spec.Egress == nil && len(spec.CopyIn) == 0 && (tmpl == "" || image.IsBuiltin(tmpl)) {
				// A sandbox a daemon on this host set up ahead of demand.
				req := runpool.Request{Argv: spec.Argv, Env: spec.Env, Limits: spec.Limits, Stream: !asJSON}
				if code, ok := quickrun.Pooled(cmd.Context(), dataDir, req, spec.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()); ok {
					if code != 0 {
						return &exitError{code: code, err: errors.New("")}
					}
					return nil
				}
			}
			rt, err := runtime.New(cmd.Context(), rcfg)
			if err != nil {
				return runFailure(cmd, asJSON, err)
			}
			if err := rt.Validate(&spec); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			res, err := rt.Run(cmd.Context(), spec)
			if err != nil {
				if errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid) {
					return &exitError{code: exitUsage, err: err}
				}
				return runFailure(cmd, asJSON, err)
			}
			return reportRun(cmd, res, asJSON)
		},
	}
	lf.register(c)
	fl := c.Flags()
	nf.register(fl)
	ef.register(fl)
	fl.StringVar(&stdin, "stdin", "", "file to feed to the program's standard input (default: this command's stdin)")
	fl.StringArrayVar(&copyIn, "copy-in", nil, "copy a host file into /home/user: NAME=HOSTPATH (repeatable)")
	fl.StringArrayVar(&env, "env", nil, "set an environment variable: KEY=VALUE (repeatable)")
	fl.BoolVar(&asJSON, "json", false, "print one JSON object with the verdict, output and measurements")
	fl.BoolVar(&noPool, "no-pool", false, "always set up the sandbox here, even when a daemon with this --data-dir has one ready")
	fl.StringVar(&dataDir, "data-dir", defaultDataDir, "SoulBox data directory")
	fl.StringVar(&tmpl, "template", "", "run in a sandbox of this template (soulbox template list); default: host")
	code.register(c)
	return c
}

// reportRun prints a run's result: the JSON object, or a note on stderr
// for limit verdicts; the exit status is the program's.
func reportRun(cmd *cobra.Command, res *runtime.Result, asJSON bool) error {
	if code := quickrun.Report(cmd.OutOrStdout(), cmd.ErrOrStderr(), res, asJSON); code != 0 {
		return &exitError{code: code, err: errors.New("")}
	}
	return nil
}

// runFailure reports a sandbox that could not be set up: as a JSON object
// with status XX under --json, and with exit status 125 either way.
func runFailure(cmd *cobra.Command, asJSON bool, err error) error {
	quickrun.Failure(cmd.OutOrStdout(), asJSON, err)
	return &exitError{code: exitInternal, err: err}
}
