package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupName ties a run's cgroup to its uid slot, so that a cgroup left
// behind by a runner that died can be recognised as stale: its slot is free.
func cgroupName(slot int, id string) string {
	return "run-" + strconv.Itoa(slot) + "-" + id
}

func slotOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "run-")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	slot, err := strconv.Atoi(n)
	return slot, err == nil
}

// sweep removes cgroups of runs whose runner died before releasing them
// (e.g. SIGKILL: Pdeathsig then ends the sandbox, but nobody removes its
// cgroup). A cgroup is stale when its uid slot can be locked, which means
// no live sandbox holds it; the lock is kept while the cgroup is removed
// so no new run can take the slot meanwhile.
func (r *Runtime) sweep(ctx context.Context) error {
	names, err := r.cgroups.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		slot, ok := slotOf(name)
		if !ok {
			continue
		}
		held, err := r.ids.Reacquire(slot)
		if errors.Is(err, unix.EWOULDBLOCK) {
			continue // a live sandbox owns this slot
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if cg, err := r.cgroups.Open(name); err == nil {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := cg.Destroy(dctx); err != nil {
				errs = append(errs, fmt.Errorf("remove stale cgroup %s: %w", name, err))
			} else {
				r.log.Info("removed stale cgroup", "cgroup", name)
			}
			cancel()
		}
		held.Close()
	}
	return errors.Join(errs...)
}
