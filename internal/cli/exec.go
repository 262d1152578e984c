package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

func newExecCmd() *cobra.Command {
	var cf clientFlags
	var user, cwd string
	var env []string
	c := &cobra.Command{
		Use:   "exec [flags] ID [--] CMD [ARGS...]",
		Short: "Run a command in a sandbox, with this terminal's stdin, stdout and stderr",
		Long: `Run a command in a sandbox. CMD and ARGS are passed as they are, without a
shell (use "sh -c '...'" for one). Output streams as it is produced; stdin is
forwarded and closed at end of file; SIGINT and SIGTERM are sent to the
command as SIGTERM (a second one as SIGKILL). soulbox exits with the
command's exit code (128+n when signal n ended it). Flags go before ID.`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, argv := args[0], args[1:]
			if argv[0] == "--" {
				argv = argv[1:]
			}
			if len(argv) == 0 || argv[0] == "" {
				return usageErrorf("exec needs a command after the sandbox id")
			}
			if err := checkID(id); err != nil {
				return err
			}
			envs, err := parsePairs("env", env)
			if err != nil {
				return err
			}
			sbx, err := cf.connect(cmd, id)
			if err != nil {
				return err
			}
			// Signals are forwarded to the command rather than ending the
			// stream: the command decides when soulbox exits.
			ctx := context.WithoutCancel(cmd.Context())
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			opts := []soulbox.CommandOption{
				soulbox.WithStdin(), soulbox.WithTimeout(0), soulbox.WithoutCapture(), soulbox.WithEnv(envs),
				soulbox.WithOnStdout(func(b []byte) { stdout.Write(b) }),
				soulbox.WithOnStderr(func(b []byte) { stderr.Write(b) }),
			}
			if user != "" {
				opts = append(opts, soulbox.WithUser(user))
			}
			if cwd != "" {
				opts = append(opts, soulbox.WithCwd(cwd))
			}
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)

			h, err := sbx.Commands.StartArgv(ctx, argv, opts...)
			if err != nil {
				return fmt.Errorf("exec in %s: %w", id, err)
			}
			go forwardStdin(ctx, cmd.InOrStdin(), h)
			go forwardSignals(ctx, sigs, h)
			res, err := h.Wait(ctx)
			return remoteExit(res, err)
		},
	}
	c.Flags().SetInterspersed(false)
	cf.register(c)
	c.Flags().StringVarP(&user, "user", "u", "", `sandbox user to run as (default "user")`)
	c.Flags().StringVarP(&cwd, "cwd", "w", "", "working directory (default: the user's home)")
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "KEY=VALUE environment variable, repeatable")
	return c
}

// forwardStdin sends in to the command until end of file, then closes
// the command's stdin. It gives up when the command is gone.
func forwardStdin(ctx context.Context, in io.Reader, h *soulbox.CommandHandle) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if h.SendStdin(ctx, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			h.CloseStdin(ctx)
			return
		}
	}
}

// forwardSignals turns the first SIGINT or SIGTERM into SIGTERM for the
// command and any further one into SIGKILL.
func forwardSignals(ctx context.Context, sigs <-chan os.Signal, h *soulbox.CommandHandle) {
	sig := soulbox.SIGTERM
	for {
		select {
		case <-sigs:
			h.Signal(ctx, sig)
			sig = soulbox.SIGKILL
		case <-h.Done():
			return
		}
	}
}

// signalExit maps the agent's "signal: NAME" status to the shell's
// 128+n convention.
var signalExit = map[string]int{
	"hangup": 129, "interrupt": 130, "quit": 131, "aborted": 134, "killed": 137,
	"segmentation fault": 139, "broken pipe": 141, "terminated": 143,
}

// remoteExit turns the result of a remote command into the CLI's exit.
func remoteExit(res *soulbox.CommandResult, err error) error {
	var exit *soulbox.CommandExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		if code := exit.ExitCode(); code > 0 && code < 256 {
			return silentExit(code)
		}
		if name, ok := strings.CutPrefix(res.Error, "signal: "); ok {
			if code, ok := signalExit[name]; ok {
				return silentExit(code)
			}
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("command ended abnormally: %s", res.Error)}
	}
	return err
}
