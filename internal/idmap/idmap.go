// Package idmap hands out host uid/gid ranges for sandbox user namespaces.
//
// Each live sandbox gets its own range of Size ids starting at a host id far
// above ordinary users, so uid 0 and uid 1000 inside map to host ids that
// own nothing on the host and differ between sandboxes. A range is held by an
// flock(2) on a slot file under the data directory: the lock lives as long as
// any descriptor of that open file, so handing a descriptor to the sandbox's
// init keeps the range reserved exactly as long as the sandbox exists, even if
// the process that allocated it dies.
package idmap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

const (
	// Base is the first host id handed out. It sits far above the ranges
	// that useradd and /etc/subuid allocate (100000 + 65536*n).
	Base = 1 << 28
	// Size is the number of ids in one range: a full 16-bit id space, so
	// every uid a program may setuid to inside is mapped.
	Size = 65536
	// Slots is the number of ranges; Base + Slots*Size stays below 2^31.
	Slots = 16384
)

// ErrExhausted is returned when every slot is in use.
var ErrExhausted = errors.New("no free uid range: too many live sandboxes")

// Range is an allocated id range. Close releases it (unless another
// descriptor of the lock, e.g. the sandbox init's, is still open).
type Range struct {
	Slot     int
	HostID   uint32 // first host uid and gid of the range
	lockFile *os.File
}

// Allocator allocates ranges using slot files in Dir.
type Allocator struct {
	Dir string
}

// Allocate reserves a free range. It tries slots in a random order so
// concurrent allocators rarely contend on the same file.
func (a Allocator) Allocate() (*Range, error) {
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("idmap: create slot dir: %w", err)
	}
	start := rand.IntN(Slots)
	for i := 0; i < Slots; i++ {
		slot := (start + i) % Slots
		r, err := a.tryLock(slot)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, err
		}
	}
	return nil, ErrExhausted
}

// Reacquire locks a specific slot, for a restarted daemon re-adopting a
// sandbox whose init still holds the lock: it succeeds only if the slot is
// free, which tells the caller the sandbox is gone.
func (a Allocator) Reacquire(slot int) (*Range, error) {
	if slot < 0 || slot >= Slots {
		return nil, fmt.Errorf("idmap: slot %d out of range", slot)
	}
	return a.tryLock(slot)
}

func (a Allocator) tryLock(slot int) (*Range, error) {
	name := filepath.Join(a.Dir, strconv.Itoa(slot))
	f, err := os.OpenFile(name, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("idmap: open slot %d: %w", slot, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, err
		}
		return nil, fmt.Errorf("idmap: lock slot %d: %w", slot, err)
	}
	return &Range{Slot: slot, HostID: uint32(Base + slot*Size), lockFile: f}, nil
}

// LockFile returns the descriptor holding the reservation, to be inherited
// by the sandbox init so the range stays reserved while the sandbox lives.
func (r *Range) LockFile() *os.File { return r.lockFile }

// Close drops this process's hold on the range.
func (r *Range) Close() error { return r.lockFile.Close() }
