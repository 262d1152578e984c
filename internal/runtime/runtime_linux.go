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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/idmap"
	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/initbin"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
	"github.com/soulbox-dev/soulbox/internal/seccomp"
)

// Config configures a Runtime.
type Config struct {
	DataDir string       // e.g. /var/lib/soulbox
	Logger  *slog.Logger // nil: discard
	Max     limits.Limits
	// Exe is the binary the sandbox init is started from; empty means
	// the small init embedded in this binary (see internal/initbin), or
	// /proc/self/exe when none is embedded.
	Exe string
	// AgentExe is the soulbox binary long-lived sandboxes exec as their
	// agent; empty means /proc/self/exe.
	AgentExe string
	// Net gives sandboxes that ask for it egress; nil: a request for
	// egress fails.
	Net *netsetup.Net
	// Images holds the templates other than host (see internal/image;
	// the zero value: this host's).
	Images image.Store
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
	images   image.Store
	instance string // tells this data directory's sandbox cgroups apart
}

// IDsDir holds the uid-range locks. Host uid ranges are a host-wide
// resource, like the cgroup subtree, so every SoulBox on the host (any
// data directory, daemon or one-shot runner) allocates from the same
// locks; /run is cleared at boot, when no sandbox is left.
const IDsDir = "/run/soulbox/ids"

// instanceOf names a data directory in sandbox cgroup names: a short hash
// of its absolute path, prefixed so it never reads as a slot number.
func instanceOf(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "d" + hex.EncodeToString(sum[:4])
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
		exe, err := installInit(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.Exe = exe
	}
	if cfg.AgentExe == "" {
		cfg.AgentExe = "/proc/self/exe"
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
		ids:      idmap.Allocator{Dir: IDsDir},
		instance: instanceOf(cfg.DataDir),
		seccomp:  sync.OnceValues(seccomp.Default().Compile),
		staging:  filepath.Join(cfg.DataDir, "mnt"),
		template: filepath.Join(cfg.DataDir, "templates"),
		images:   cfg.Images,
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
	if cfg.Net != nil {
		if err := cfg.Net.Sweep(r.slotHeld); err != nil {
			r.log.Warn("sweep stale network rules", "err", err)
		}
	}
	return r, nil
}

// CgroupVersion reports which cgroup hierarchy the runtime uses.
func (r *Runtime) CgroupVersion() cgroup.Version { return r.cgroups.Version() }

// installInit writes the embedded init binary (if any) under the data
// directory once, read-only and root-owned, named by its hash, and returns
// its path; without an embedded init it returns /proc/self/exe.
func installInit(dataDir string) (string, error) {
	if initbin.Binary.Data == nil {
		return "/proc/self/exe", nil
	}
	// The sandbox's root (an unprivileged host uid) must traverse to exec it.
	path, _, err := initbin.Binary.Install(filepath.Join(dataDir, "bin"), "soulbox-init-", 0o711)
	if err != nil {
		return "", fmt.Errorf("install init: %w", err)
	}
	return path, nil
}

// slotHeld reports whether a uid slot is held by a live sandbox (or its
// runner); when unsure, it says held.
func (r *Runtime) slotHeld(slot int) bool {
	held, err := r.ids.Reacquire(slot)
	if err != nil {
		return true
	}
	held.Close()
	return false
}
