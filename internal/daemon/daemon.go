// Package daemon assembles `soulbox serve`: the store, the isolation
// runtime, the sandbox manager and the API on one listener (HTTP/1.1 and
// h2c, or TLS with HTTP/2), with graceful shutdown. Sandboxes outlive the
// daemon: stopping it leaves them running for the next start to adopt.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/soulbox-dev/soulbox/internal/api"
	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/runpool/poolserver"
	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// Config configures the daemon.
type Config struct {
	Listen          string // host:port
	DataDir         string
	TLSCert, TLSKey string // both or neither
	Domain          string
	DefaultTimeout  time.Duration
	MaxTimeout      time.Duration
	MaxSandboxes    int
	Pool            int // sandboxes kept started ahead of demand
	// RunPool one-shot sandboxes are kept ready for `soulbox run` on the
	// same host (internal/runpool); 0: none.
	RunPool int
	// RunPoolReuse is how many runs one of them serves, cleaned between
	// runs as a judge worker is (1: a fresh sandbox for every run).
	RunPoolReuse int
	// Max are the administrator's maximums for every limit; the zero
	// value means limits.Maximums().
	Max limits.Limits
	// Net configures egress (subnet, nameservers).
	Net    netsetup.Config
	Logger *slog.Logger
	// Ready, if set, is called with the listener's address once the
	// daemon serves.
	Ready func(addr net.Addr)
}

// Run serves until ctx is cancelled, then shuts down gracefully (waiting
// a bounded time for requests in flight, streams included).
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	st, err := store.Open(ctx, cfg.DataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	nw, err := netsetup.New(cfg.Net)
	if err != nil {
		return err
	}
	rt, err := runtime.New(ctx, runtime.Config{DataDir: cfg.DataDir, Logger: log, Max: cfg.Max, Net: nw})
	if err != nil {
		return err
	}
	mgr := sandbox.New(sandbox.Config{
		Runtime: sandbox.FromRuntime(rt), Store: st, Logger: log, Max: cfg.Max,
		DefaultTimeout: cfg.DefaultTimeout, MaxTimeout: cfg.MaxTimeout, MaxSandboxes: cfg.MaxSandboxes,
	})
	defer mgr.Close()
	if err := mgr.Recover(ctx); err != nil {
		// What could not be cleaned is reported; adopted sandboxes serve.
		log.Error("recovering sandboxes", "err", err)
	}
	mgr.StartPool(cfg.Pool)
	go mgr.WatchCPU(ctx, sandbox.CPUWatchInterval)
	if cfg.RunPool > 0 {
		rp := poolserver.NewServer(rt, cfg.RunPool, cfg.RunPoolReuse, log)
		defer rp.Close()
		if err := rp.Listen(cfg.DataDir); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if cfg.TLSCert != "" {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true) // gRPC and Connect over h2c
	}
	srv := &http.Server{
		Handler: api.New(api.Config{
			Manager: mgr, Store: st, Logger: log, Domain: cfg.Domain, MaxLimits: cfg.Max,
			Executor: &lang.Executor{Runner: rt, CacheDir: filepath.Join(cfg.DataDir, "cache", "compile"), Log: log},
		}),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	log.Info("serving", "addr", ln.Addr().String(), "sandboxes", mgr.Count(), "cgroup", rt.CgroupVersion().String())
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; sandboxes keep running")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // long streams: cut them
	}
	return nil
}
