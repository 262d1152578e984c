package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/limits"
	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

func newSandboxCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "sandbox",
		Aliases: []string{"sbx"},
		Short:   "Create, list, inspect, pause, resume and kill sandboxes of a running daemon",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("sandbox needs a subcommand: create, ls, info, kill, pause, resume or timeout")
		},
	}
	cf.register(c)
	c.AddCommand(newSandboxCreateCmd(&cf), newSandboxLsCmd(&cf), newSandboxInfoCmd(&cf), newSandboxKillCmd(&cf),
		newSandboxPauseCmd(&cf), newSandboxResumeCmd(&cf), newSandboxTimeoutCmd(&cf))
	return c
}

// mebibytes parses a size flag ("512M", "1G") into whole MiB.
func mebibytes(flag, v string) (int, error) {
	n, err := limits.ParseBytes(v)
	if err != nil {
		return 0, usageErrorf("--%s: %v", flag, err)
	}
	if n%(1<<20) != 0 || n>>20 > math.MaxInt32 {
		return 0, usageErrorf("--%s %q: must be a whole number of MiB (e.g. 512M, 1G)", flag, v)
	}
	return int(n >> 20), nil
}

func parseTimeout(flag, v string) (time.Duration, error) {
	d, err := limits.ParseDuration(v)
	if err != nil {
		return 0, usageErrorf("--%s: %v", flag, err)
	}
	return d, nil
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newSandboxCreateCmd(cf *clientFlags) *cobra.Command {
	var template, timeout, memory, cpus, disk, pids string
	var metadata, env, allowOut, denyOut, allowDomain []string
	var autoPause, asJSON, network bool
	c := &cobra.Command{
		Use:   "create",
		Short: "Create a sandbox; its id is printed on the last line",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := soulbox.CreateOptions{Template: template, AutoPause: autoPause, Network: network, AllowOut: append(allowOut, allowDomain...), DenyOut: denyOut}
			var err error
			if timeout != "" {
				if opts.Timeout, err = parseTimeout("timeout", timeout); err != nil {
					return err
				}
			}
			if memory != "" {
				if opts.Limits.MemoryMB, err = mebibytes("memory", memory); err != nil {
					return err
				}
			}
			if disk != "" {
				if opts.Limits.DiskSizeMB, err = mebibytes("disk", disk); err != nil {
					return err
				}
			}
			if cpus != "" {
				if opts.Limits.CPUs, err = limits.ParseCPUs(cpus); err != nil {
					return usageErrorf("--cpus: %v", err)
				}
			}
			if pids != "" {
				n, err := limits.ParseCount(pids)
				if err != nil || n > math.MaxInt32 {
					return usageErrorf("--pids: cannot use %q", pids)
				}
				opts.Limits.Pids = int(n)
			}
			if opts.Metadata, err = parsePairs("metadata", metadata); err != nil {
				return err
			}
			if opts.Env, err = parsePairs("env", env); err != nil {
				return err
			}
			client, err := cf.client()
			if err != nil {
				return err
			}
			sbx, err := client.Create(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("create sandbox: %w", err)
			}
			if asJSON {
				return printJSON(cmd, map[string]string{
					"sandboxID": sbx.ID, "templateID": sbx.TemplateID, "envdVersion": sbx.EnvdVersion,
				})
			}
			fmt.Fprintln(cmd.OutOrStdout(), sbx.ID)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&template, "template", "", `template id (default: the daemon's, "host")`)
	fl.StringVar(&timeout, "timeout", "", "lifetime before the sandbox is killed or paused, e.g. 300s, 1h (default: the daemon's)")
	fl.StringVar(&memory, "memory", "", "memory limit, e.g. 512M, 1G")
	fl.StringVar(&cpus, "cpus", "", "CPU quota in cores, e.g. 0.5, 2")
	fl.StringVar(&disk, "disk", "", "size of the writable file system, e.g. 1G")
	fl.StringVar(&pids, "pids", "", "maximum processes and threads")
	fl.StringArrayVar(&metadata, "metadata", nil, "KEY=VALUE label, repeatable")
	fl.StringArrayVar(&env, "env", nil, "KEY=VALUE environment variable of every process, repeatable")
	fl.BoolVar(&autoPause, "auto-pause", false, "pause instead of kill when the timeout passes")
	fl.BoolVar(&asJSON, "json", false, "print the new sandbox as JSON")
	fl.BoolVar(&network, "network", false, "give the sandbox network egress (NAT; the host, link-local, private ranges and other sandboxes stay blocked)")
	fl.StringArrayVar(&allowOut, "allow-out", nil, "allow egress to this IPv4 CIDR or address, even a private one (repeatable; implies --network)")
	fl.StringArrayVar(&allowDomain, "allow-domain", nil, "allow egress to this domain (\"*.example.com\": its subdomains) through SoulBox's DNS filter and HTTP Host / TLS SNI checks; the sandbox then resolves only allowed domains (repeatable; implies --network)")
	fl.StringArrayVar(&denyOut, "deny-out", nil, "deny egress to this IPv4 CIDR or address (repeatable; implies --network; --allow-out wins)")
	return c
}

func newSandboxLsCmd(cf *clientFlags) *cobra.Command {
	var metadata, states []string
	var asJSON bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List sandboxes",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			md, err := parsePairs("metadata", metadata)
			if err != nil {
				return err
			}
			opts := soulbox.ListOptions{Metadata: md}
			for _, s := range states {
				if s != string(soulbox.StateRunning) && s != string(soulbox.StatePaused) {
					return usageErrorf("--state %q: want running or paused", s)
				}
				opts.States = append(opts.States, soulbox.State(s))
			}
			client, err := cf.client()
			if err != nil {
				return err
			}
			all := []soulbox.Info{}
			for info, err := range client.ListAll(cmd.Context(), opts) {
				if err != nil {
					return fmt.Errorf("list sandboxes: %w", err)
				}
				all = append(all, info)
			}
			if asJSON {
				return printJSON(cmd, all)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTEMPLATE\tSTATE\tSTARTED\tEND\tMETADATA")
			for _, s := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.TemplateID, s.State,
					formatTime(s.StartedAt), formatTime(s.EndAt), formatPairs(s.Metadata))
			}
			return w.Flush()
		},
	}
	c.Flags().StringArrayVar(&metadata, "metadata", nil, "only sandboxes with this KEY=VALUE label, repeatable")
	c.Flags().StringSliceVar(&states, "state", nil, "only sandboxes in these states: running, paused")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func newSandboxInfoCmd(cf *clientFlags) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "info ID",
		Short: "Show a sandbox",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			client, err := cf.client()
			if err != nil {
				return err
			}
			info, err := client.Get(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("sandbox %s: %w", args[0], err)
			}
			if asJSON {
				return printJSON(cmd, info)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "ID:\t%s\n", info.ID)
			fmt.Fprintf(w, "Template:\t%s\n", info.TemplateID)
			fmt.Fprintf(w, "State:\t%s\n", info.State)
			fmt.Fprintf(w, "Started:\t%s\n", formatTime(info.StartedAt))
			fmt.Fprintf(w, "Ends:\t%s\n", formatTime(info.EndAt))
			if l := info.Limits; l != nil {
				fmt.Fprintf(w, "Limits:\tcpus=%g memory=%dM disk=%dM pids=%d\n", l.CPUs, l.MemoryMB, l.DiskSizeMB, l.Pids)
			}
			fmt.Fprintf(w, "Metadata:\t%s\n", formatPairs(info.Metadata))
			fmt.Fprintf(w, "Envd version:\t%s\n", info.EnvdVersion)
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newSandboxKillCmd(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kill ID...",
		Short: "Kill sandboxes and delete everything in them",
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, id := range args {
				if err := checkID(id); err != nil {
					return err
				}
			}
			client, err := cf.client()
			if err != nil {
				return err
			}
			var errs []error
			for _, id := range args {
				if err := client.Kill(cmd.Context(), id); err != nil {
					errs = append(errs, fmt.Errorf("kill %s: %w", id, err))
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return errors.Join(errs...)
		},
	}
}

// sandboxAction is a subcommand that acts on one sandbox by id through
// the control plane.
func sandboxAction(cf *clientFlags, use, short string, nargs int, run func(cmd *cobra.Command, client *soulbox.Client, id string, args []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.ExactArgs(nargs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			client, err := cf.client()
			if err != nil {
				return err
			}
			return run(cmd, client, args[0], args[1:])
		},
	}
}

func newSandboxPauseCmd(cf *clientFlags) *cobra.Command {
	return sandboxAction(cf, "pause ID", "Pause a sandbox (its processes freeze; its files stay)", 1,
		func(cmd *cobra.Command, client *soulbox.Client, id string, _ []string) error {
			if err := client.Pause(cmd.Context(), id); err != nil {
				return fmt.Errorf("pause %s: %w", id, err)
			}
			return nil
		})
}

func newSandboxResumeCmd(cf *clientFlags) *cobra.Command {
	var timeout string
	c := sandboxAction(cf, "resume ID", "Resume a paused sandbox", 1,
		func(cmd *cobra.Command, client *soulbox.Client, id string, _ []string) error {
			var d time.Duration
			if timeout != "" {
				var err error
				if d, err = parseTimeout("timeout", timeout); err != nil {
					return err
				}
			}
			if err := client.Resume(cmd.Context(), id, d); err != nil {
				return fmt.Errorf("resume %s: %w", id, err)
			}
			return nil
		})
	c.Flags().StringVar(&timeout, "timeout", "", "new lifetime from now, e.g. 300s (default: the daemon's)")
	return c
}

func newSandboxTimeoutCmd(cf *clientFlags) *cobra.Command {
	return sandboxAction(cf, "timeout ID DURATION", "Make a sandbox end DURATION from now", 2,
		func(cmd *cobra.Command, client *soulbox.Client, id string, args []string) error {
			d, err := limits.ParseDuration(args[0])
			if err != nil {
				return usageErrorf("duration: %v", err)
			}
			if err := client.SetTimeout(cmd.Context(), id, d); err != nil {
				return fmt.Errorf("timeout %s: %w", id, err)
			}
			return nil
		})
}
