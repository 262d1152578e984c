package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/daemon"
)

func newServeCmd() *cobra.Command {
	cfg := daemon.Config{}
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
			if cfg.Pool < 0 {
				return usageErrorf("--pool must not be negative")
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
	return c
}
