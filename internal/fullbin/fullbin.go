// Package fullbin carries the full soulbox binary inside the small one
// that users run. `soulbox run` through a daemon's run pool is the one
// command whose start-up time matters (it is the whole cost of a pooled
// run), and a Go program's start grows with what it links: the full
// binary (daemon, agent, SQLite, Connect, protobuf) takes about 3.5 ms to
// start here, a small one about 1.5 ms. So `make build` builds the full
// binary first (cmd/soulbox without the soulbox_front tag), embeds it here,
// and builds cmd/soulbox again with the tag: that front handles pooled
// runs itself (internal/quickrun) and executes the full binary, installed
// once under a cache directory and named by its hash, for everything else.
// A release is still one file.
package fullbin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/exebin"
)

// Binary is the embedded full soulbox; its Data is nil when built without
// it.
var Binary exebin.Embedded

// prefix names the installed binary (prefix and 16 hex digits of its hash).
const prefix = "soulbox-"

// rootCache is where root installs the full binary: root-owned, mode 0700
// (the daemon runs it; sandboxes receive the agent as a descriptor and
// never need its path).
const rootCache = "/var/cache/soulbox"

// Exec replaces this process with the full binary, with the same argv and
// environment. It returns only on failure.
func Exec(argv []string) error {
	if Binary.Data == nil {
		return fmt.Errorf("full binary: %w", exebin.ErrNoSum)
	}
	for _, dir := range cacheDirs() {
		// Twice: another version's front may remove this file between
		// the install and the exec (see prune).
		for range 2 {
			path, fresh, err := Binary.Install(dir, prefix, 0o700)
			if err != nil {
				break
			}
			if fresh {
				prune(dir, filepath.Base(path))
			}
			if err := unix.Exec(path, argv, os.Environ()); err != unix.ENOENT {
				return fmt.Errorf("full binary: %w", err)
			}
		}
	}
	// No writable cache (a user without a home directory): run it from
	// memory.
	return execMemory(argv)
}

// prune removes the cache's other versions when a new one is installed,
// so upgrades and rebuilds do not pile up 20 MB files. A process running one keeps it (the kernel
// holds the file while it runs; a daemon's /proc/self/exe still opens).
func prune(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n != keep && strings.HasPrefix(n, prefix) && len(n) == len(keep) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

func cacheDirs() []string {
	if os.Geteuid() == 0 {
		return []string{rootCache}
	}
	if d, err := os.UserCacheDir(); err == nil {
		return []string{filepath.Join(d, "soulbox")}
	}
	return nil
}

func execMemory(argv []string) error {
	const name = "soulbox"
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("full binary: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := f.Write(Binary.Data); err != nil {
		return fmt.Errorf("full binary: %w", err)
	}
	unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	return fmt.Errorf("full binary: %w", exebin.Execveat(int(f.Fd()), argv, os.Environ()))
}
