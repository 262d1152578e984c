// Package cli defines the soulbox command line: flag parsing and output
// formatting only. The work is done by the packages it calls.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/quickrun"
)

// Exit codes shared by all commands.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = quickrun.ExitUsage
	exitInternal = quickrun.ExitInternal // the sandbox could not be set up
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// logger logs warnings and errors to stderr (e.g. a cgroup that could not
// be removed), and everything down to debug (set-up phase timings) when
// SOULBOX_DEBUG is set.
func logger(cmd *cobra.Command) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SOULBOX_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
}

// Version is set at build time with -ldflags.
var Version = "dev"

// Main runs the CLI and returns the process exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	root := &cobra.Command{
		Use:           "soulbox",
		Short:         "SoulBox: a self-hostable sandbox for untrusted code",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(newRunCmd(), newDoctorCmd(), newAPIKeyCmd(), newServeCmd(),
		newSandboxCmd(), newExecCmd(), newShellCmd(), newCpCmd(), newFilesCmd(),
		newLanguagesCmd(), newJudgeCmd(), newTemplateCmd())
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintf(stderr, "soulbox: %v\n", ee.err)
		}
		if ee.code == exitUsage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "soulbox: %v\n", err)
	// Unknown commands and flags reach here from cobra's own parsing.
	if cmd == nil || cmd == root {
		return exitUsage
	}
	return exitFailure
}
