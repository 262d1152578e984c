// Package runtime is SoulBox's Linux isolation runtime: it starts a program
// in a fresh sandbox — user, mount, pid, net, uts, ipc and cgroup
// namespaces, an overlay root, a cgroup with limits, seccomp, no
// capabilities — watches its limits, and reports what happened as a Result
// with a verdict. It is used by `soulbox run` and, later, by the daemon.
//
// A Runtime is safe for concurrent use; every Run owns its own resources
// and releases all of them (processes, cgroup, uid range) before returning.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/idmap"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
	"github.com/soulbox-dev/soulbox/internal/seccomp"
)

// Config configures a Runtime.
type Config struct {
	DataDir string       // e.g. /var/lib/soulbox
	Logger  *slog.Logger // nil: discard
	Max     limits.Limits
	// Exe is the soulbox binary the init is started from; empty means
	// /proc/self/exe.
	Exe string
}

// Runtime runs sandboxes. Create it with New.
type Runtime struct {
	cfg      Config
	log      *slog.Logger
	cgroups  *cgroup.Hierarchy
	ids      idmap.Allocator
	seccomp  func() ([]unix.SockFilter, error) // compiled once, in the background
	staging  string
	template string
}

// ErrNotRoot is returned by New when the process lacks the privileges the
// runtime needs (it writes uid maps and creates cgroups).
var ErrNotRoot = errors.New("soulbox needs to run as root (uid maps, cgroups and mounts)")

// New checks the host, prepares the data directory and removes what runs
// whose runner died left behind.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Exe == "" {
		cfg.Exe = "/proc/self/exe"
	}
	if cfg.Max == (limits.Limits{}) {
		cfg.Max = limits.Maximums()
	}
	cg, err := cgroup.Detect()
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	r := &Runtime{
		cfg:      cfg,
		log:      cfg.Logger,
		cgroups:  cg,
		ids:      idmap.Allocator{Dir: filepath.Join(cfg.DataDir, "ids")},
		seccomp:  sync.OnceValues(seccomp.Default().Compile),
		staging:  filepath.Join(cfg.DataDir, "mnt"),
		template: filepath.Join(cfg.DataDir, "templates"),
	}
	go r.seccomp() // overlaps with the rest of set-up
	// The data dir is traversable (the sandbox's root must reach the
	// template and the staging point) but not listable by others.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("chmod data dir: %w", err)
	}
	if err := os.MkdirAll(r.staging, 0o755); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	if _, err := rootfs.EnsureHostTemplate(r.template); err != nil {
		return nil, err
	}
	if err := r.sweep(ctx); err != nil {
		// Stale cgroups cost nothing but a directory; report, don't fail.
		r.log.Warn("sweep stale cgroups", "err", err)
	}
	return r, nil
}

// CgroupVersion reports which cgroup hierarchy the runtime uses.
func (r *Runtime) CgroupVersion() cgroup.Version { return r.cgroups.Version() }
