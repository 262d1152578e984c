package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

func newShellCmd() *cobra.Command {
	var cf clientFlags
	var user, cwd string
	var env []string
	c := &cobra.Command{
		Use:   "shell ID [-- CMD [ARGS...]]",
		Short: "Open an interactive terminal in a sandbox (default /bin/bash -i -l)",
		Long: `Open an interactive terminal in a sandbox. The local terminal is put in raw
mode, so every key (Ctrl-C included) goes to the sandbox; its size follows
the local window. soulbox exits with the shell's exit code. stdin must be a
terminal; use 'soulbox exec' for pipes.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, argv := args[0], args[1:]
			if len(argv) > 0 && argv[0] == "--" {
				argv = argv[1:]
			}
			if err := checkID(id); err != nil {
				return err
			}
			envs, err := parsePairs("env", env)
			if err != nil {
				return err
			}
			in, ok := cmd.InOrStdin().(*os.File)
			if !ok || !term.IsTerminal(int(in.Fd())) {
				return usageErrorf("shell needs a terminal on stdin; use 'soulbox exec %s -- CMD' for pipes and scripts", id)
			}
			fd := int(in.Fd())
			sbx, err := cf.connect(cmd, id)
			if err != nil {
				return err
			}
			cols, rows := 80, 24
			if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
				cols, rows = w, h
			}
			out := cmd.OutOrStdout()
			// The session outlives a SIGTERM/SIGHUP of this process only as
			// long as it takes to kill it (below).
			ctx := context.WithoutCancel(cmd.Context())

			saved, err := term.MakeRaw(fd)
			if err != nil {
				return err
			}
			defer term.Restore(fd, saved)
			sess, err := sbx.PTY.Create(ctx, soulbox.PTYOptions{
				Cols: clampSize(cols), Rows: clampSize(rows), Cmd: argv, Env: envs, Cwd: cwd, User: user,
				OnData: func(b []byte) { out.Write(b) },
			})
			if err != nil {
				return err
			}

			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for {
					select {
					case <-winch:
						if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
							sess.Resize(ctx, clampSize(w), clampSize(h))
						}
					case <-sess.Done():
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := in.Read(buf)
					if n > 0 && sess.SendInput(ctx, buf[:n]) != nil {
						return
					}
					if err != nil {
						return
					}
				}
			}()
			select {
			case <-sess.Done():
			case <-cmd.Context().Done():
				sess.Kill(ctx)
			}
			res, err := sess.Wait(ctx)
			return remoteExit(res, err)
		},
	}
	c.Flags().SetInterspersed(false)
	cf.register(c)
	c.Flags().StringVarP(&user, "user", "u", "", `sandbox user (default "user")`)
	c.Flags().StringVarP(&cwd, "cwd", "w", "", "working directory (default: the user's home)")
	c.Flags().StringArrayVarP(&env, "env", "e", nil, "KEY=VALUE environment variable, repeatable")
	return c
}

func clampSize(n int) uint16 {
	return uint16(min(max(n, 1), 4096))
}
