package idmap

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAllocateIsExclusive(t *testing.T) {
	a := Allocator{Dir: t.TempDir()}
	seen := map[uint32]bool{}
	var held []*Range
	for i := 0; i < 50; i++ {
		r, err := a.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		if seen[r.HostID] {
			t.Fatalf("range %d handed out twice", r.HostID)
		}
		if r.HostID < Base || uint64(r.HostID)+Size > 1<<31 || (r.HostID-Base)%Size != 0 {
			t.Fatalf("range %d outside the reserved id space", r.HostID)
		}
		seen[r.HostID] = true
		held = append(held, r)
	}
	// A held slot cannot be re-acquired; a released one can.
	if _, err := a.Reacquire(held[0].Slot); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("Reacquire of a held slot: %v, want EWOULDBLOCK", err)
	}
	held[0].Close()
	r, err := a.Reacquire(held[0].Slot)
	if err != nil {
		t.Fatalf("Reacquire of a released slot: %v", err)
	}
	r.Close()
	for _, r := range held[1:] {
		r.Close()
	}
	if _, err := a.Reacquire(Slots); err == nil {
		t.Fatal("Reacquire accepted an out-of-range slot")
	}
}

// The lock is held by any descriptor of the open file: a duplicate kept
// by the sandbox init keeps the range reserved after the allocator closes.
func TestLockOutlivesAllocatorDescriptor(t *testing.T) {
	a := Allocator{Dir: t.TempDir()}
	r, err := a.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(int(r.LockFile().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := a.Reacquire(r.Slot); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("slot free while a duplicate descriptor is open: %v", err)
	}
	unix.Close(dup)
	r2, err := a.Reacquire(r.Slot)
	if err != nil {
		t.Fatalf("slot still locked after the last descriptor closed: %v", err)
	}
	r2.Close()
}
