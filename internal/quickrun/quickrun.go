// Package quickrun is the fast path of `soulbox run`: a command a running
// daemon's run pool can take (no files copied in, no network, the flags
// below) is parsed and sent here, by a program that links only this, the
// run pool's client and the limits; everything else goes to the full
// command line (internal/cli), which gives the same answers. A pooled run's
// whole cost is this program's start plus the run itself, so what it links
// is what it costs (see internal/fullbin).
package quickrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/result"
	"github.com/soulbox-dev/soulbox/internal/runpool"
)

// DefaultDataDir is the data directory commands use without --data-dir.
const DefaultDataDir = "/var/lib/soulbox"

// Exit statuses shared with the full command line.
const (
	ExitUsage    = 2
	ExitInternal = 125 // the sandbox could not be set up
)

// PoolDebugLine is logged (with SOULBOX_DEBUG set) when a run took a
// sandbox from the daemon's run pool.
const PoolDebugLine = "ran in a sandbox from the daemon's run pool"

// request is a `soulbox run` the fast path can send.
type request struct {
	limits  limits.Limits
	env     []string
	stdin   string
	asJSON  bool
	dataDir string
	argv    []string
}

// parse reads the arguments after "run": only the flags below, each as
// --name=value or --name value, then "--" and the command. Anything else
// (help, other flags, a value the limits refuse) is the full command
// line's to answer.
func parse(args []string) (request, bool) {
	r := request{limits: limits.Defaults(), dataDir: DefaultDataDir}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			r.argv = args[i+1:]
			return r, len(r.argv) > 0
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || name == "" {
			return r, false
		}
		if name == "json" {
			r.asJSON = true
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return r, false
				}
				r.asJSON = b
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return r, false
			}
			i++
			value = args[i]
		}
		switch {
		case name == "env":
			r.env = append(r.env, value)
		case name == "stdin":
			r.stdin = value
		case name == "data-dir":
			r.dataDir = value
		case slices.Contains(limits.Names, name):
			if r.limits.Set(name, value) != nil {
				return r, false
			}
		default:
			return r, false
		}
	}
	return r, false
}

// Main runs argv (os.Args) when it is a `soulbox run` the run pool takes,
// and returns the exit status with next nil. Otherwise it returns the
// argv for the full command line: argv itself, or with --no-pool when the
// pool answered that it cannot take the run (so the full command sets up
// its own sandbox without asking again).
func Main(argv []string, stdin *os.File, stdout, stderr io.Writer) (code int, next []string) {
	if len(argv) < 2 || argv[1] != "run" {
		return 0, argv
	}
	r, ok := parse(argv[2:])
	if !ok {
		return 0, argv
	}
	in := io.Reader(stdin)
	if r.stdin != "" {
		f, err := os.Open(r.stdin)
		if err != nil {
			return 0, argv
		}
		defer f.Close()
		in = f
	}
	// No signal handlers: SIGINT, SIGTERM or SIGHUP end this process, the
	// kernel closes its connection, and the daemon ends the run.
	req := runpool.Request{Argv: r.argv, Env: r.env, Limits: r.limits, Stream: !r.asJSON}
	code, ok = Pooled(context.Background(), r.dataDir, req, in, stdout, stderr)
	if !ok {
		return 0, slices.Insert(slices.Clone(argv), 2, "--no-pool")
	}
	return code, nil
}

// Pooled runs req in a ready sandbox of the daemon using dataDir and
// reports it as `soulbox run` does (output passed through when
// req.Stream, the JSON object otherwise), returning the exit status. ok is
// false when the pool cannot take the run: nothing was read from stdin or
// written, and the caller sets up its own sandbox.
func Pooled(ctx context.Context, dataDir string, req runpool.Request, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	var out, errOut io.Writer
	if req.Stream {
		out, errOut = stdout, stderr
	}
	res, err := runpool.Run(ctx, dataDir, req, stdin, out, errOut)
	switch {
	case err == nil:
		if os.Getenv("SOULBOX_DEBUG") != "" {
			slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).Debug(PoolDebugLine)
		}
		return Report(stdout, stderr, res, !req.Stream), true
	case errors.Is(err, runpool.ErrCold):
		return 0, false
	case errors.Is(err, runpool.ErrInvalid):
		fmt.Fprintf(stderr, "soulbox: %v\nRun 'soulbox run --help' for usage.\n", err)
		return ExitUsage, true
	default:
		Failure(stdout, !req.Stream, err)
		fmt.Fprintf(stderr, "soulbox: %v\n", err)
		return ExitInternal, true
	}
}

// Report prints a run's result as `soulbox run` does — the JSON object,
// or a note on stderr for limit verdicts — and returns the exit status:
// the program's, or 0 with --json.
func Report(stdout, stderr io.Writer, res *result.Result, asJSON bool) int {
	if asJSON {
		if res.WriteJSON(stdout) != nil {
			return ExitInternal
		}
		return 0
	}
	if res.Status != result.StatusOK && res.Status != result.StatusRE {
		fmt.Fprintf(stderr, "soulbox: %s\n", Describe(res))
	}
	return res.ExitCode
}

// Failure reports a sandbox that could not be set up as a JSON object with
// status XX under --json (the caller prints the error and exits with
// ExitInternal).
func Failure(stdout io.Writer, asJSON bool, err error) {
	if !asJSON {
		return
	}
	b, _ := json.Marshal(map[string]any{
		"status": result.StatusXX, "exit_code": -1, "signal": nil, "stdout": "", "stderr": "",
		"stdout_truncated": false, "stderr_truncated": false, "wall_ms": 0, "cpu_ms": 0,
		"peak_memory_bytes": 0, "error": err.Error(),
	})
	fmt.Fprintln(stdout, string(b))
}

// Describe says in words why a run ended, for a verdict other than OK/RE.
func Describe(r *result.Result) string {
	switch r.Status {
	case result.StatusTLE:
		return "time limit exceeded (TLE)"
	case result.StatusMLE:
		return "memory limit exceeded (MLE)"
	case result.StatusOLE:
		return "output limit exceeded (OLE)"
	case result.StatusFSE:
		return "file size or disk limit exceeded (FSE)"
	case result.StatusSV:
		return "killed by the syscall filter (SV)"
	case result.StatusSG:
		return "killed by signal " + r.Signal.String() + " (SG)"
	default:
		return string(r.Status)
	}
}
