package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/daemon"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
)

func newServeCmd() *cobra.Command {
	cfg := daemon.Config{}
	var maxMemory, maxDisk, maxCPUs, maxPids string
	var nf netFlags
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the SoulBox daemon: the API for long-lived sandboxes (as root)",
		Long: `Run the SoulBox daemon. One listener serves the REST/JSON control plane
(E2B-compatible), and the sandboxes' data plane (Connect, gRPC over h2c,
HTTP /files). Sandboxes outlive the daemon: on SIGTERM it stops serving and
leaves them running; the next start adopts them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.DefaultTimeout <= 0 || cfg.MaxTimeout < cfg.DefaultTimeout {
				return usageErrorf("--default-timeout must be positive and at most --max-timeout")
			}
			if cfg.Pool < 0 || cfg.RunPool < 0 {
				return usageErrorf("--pool and --run-pool must not be negative")
			}
			if cfg.RunPoolReuse < 1 {
				return usageErrorf("--run-pool-reuse must be at least 1")
			}
			var err error
			if cfg.Max, err = adminMaximums(maxMemory, maxDisk, maxCPUs, maxPids); err != nil {
				return usageErrorf("%v", err)
			}
			if cfg.Net, err = nf.config(); err != nil {
				return err
			}
			if cfg.MaxSandboxes < 1 {
				return usageErrorf("--max-sandboxes must be at least 1")
			}
			level := slog.LevelInfo
			if os.Getenv("SOULBOX_DEBUG") != "" {
				level = slog.LevelDebug
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg.Ready = func(addr net.Addr) {
				scheme := "http"
				if cfg.TLSCert != "" {
					scheme = "https"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "soulbox: serving on %s://%s\n", scheme, addr)
			}
			return daemon.Run(cmd.Context(), cfg)
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "SoulBox data directory")
	fl.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key)")
	fl.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key file (with --tls-cert)")
	fl.StringVar(&cfg.Domain, "domain", "", "domain of sandbox host names <port>-<id>.<domain> (reported to clients)")
	fl.DurationVar(&cfg.DefaultTimeout, "default-timeout", 5*time.Minute, "timeout of a sandbox whose creator sets none")
	fl.DurationVar(&cfg.MaxTimeout, "max-timeout", 24*time.Hour, "largest timeout a client may set")
	fl.IntVar(&cfg.MaxSandboxes, "max-sandboxes", 2000, "most live sandboxes at once")
	fl.IntVar(&cfg.Pool, "pool", 4, "sandboxes kept started ahead of demand, for fast creates (0: none)")
	fl.IntVar(&cfg.RunPool, "run-pool", 4, "sandboxes kept ready for `soulbox run` on this host with the same --data-dir (0: none)")
	fl.IntVar(&cfg.RunPoolReuse, "run-pool-reuse", 100, "runs one run-pool sandbox serves, cleaned between runs as a judge worker (1: a fresh sandbox for every run)")
	nf.register(fl)
	def := limits.Maximums()
	fl.StringVar(&maxMemory, "max-memory", limits.FormatBytes(def.MemoryBytes), "largest memory limit a sandbox may ask for")
	fl.StringVar(&maxDisk, "max-disk", limits.FormatBytes(def.DiskBytes), "largest disk limit a sandbox may ask for")
	fl.StringVar(&maxCPUs, "max-cpus", strconv.FormatFloat(def.CPUs, 'g', -1, 64), "largest CPU quota (cores) a sandbox may ask for")
	fl.StringVar(&maxPids, "max-pids", strconv.FormatInt(def.Pids, 10), "largest process limit a sandbox may ask for")
	return c
}

// adminMaximums applies the administrator's flags to the compiled-in
// maximums; they may only lower them (the compiled-in ones are what the
// runtime has been tested with), and must stay above the defaults.
func adminMaximums(memory, disk, cpus, pids string) (limits.Limits, error) {
	m := limits.Maximums()
	var err error
	set := func(name string, dst *int64, v string, parse func(string) (int64, error)) {
		if err != nil {
			return
		}
		n, perr := parse(v)
		switch {
		case perr != nil:
			err = fmt.Errorf("--%s: %w", name, perr)
		case n > *dst:
			err = fmt.Errorf("--%s may only lower the built-in maximum (%d)", name, *dst)
		default:
			*dst = n
		}
	}
	set("max-memory", &m.MemoryBytes, memory, limits.ParseBytes)
	set("max-disk", &m.DiskBytes, disk, limits.ParseBytes)
	set("max-pids", &m.Pids, pids, limits.ParseCount)
	if err != nil {
		return m, err
	}
	c, perr := limits.ParseCPUs(cpus)
	if perr != nil {
		return m, fmt.Errorf("--max-cpus: %w", perr)
	}
	if c > m.CPUs {
		return m, fmt.Errorf("--max-cpus may only lower the built-in maximum (%g, the host's cores)", m.CPUs)
	}
	m.CPUs = c
	// Every default must remain allowed.
	d := sandbox.DefaultLimits()
	if d.MemoryBytes > m.MemoryBytes || d.DiskBytes > m.DiskBytes || d.CPUs > m.CPUs || d.Pids > m.Pids {
		return m, fmt.Errorf("the maximums must not be below the defaults (memory %s, disk %s, cpus %g, pids %d)",
			limits.FormatBytes(d.MemoryBytes), limits.FormatBytes(d.DiskBytes), d.CPUs, d.Pids)
	}
	return m, nil
}
