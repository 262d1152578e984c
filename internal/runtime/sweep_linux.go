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

// Cgroup name prefixes: one-shot runs and long-lived sandboxes.
const (
	runPrefix     = "run-"
	sandboxPrefix = "sbx-"
)

// cgroupName ties a sandbox's cgroup to its uid slot, so that a cgroup
// left behind by a sandbox that died can be recognised as stale: its slot
// is free.
func cgroupName(prefix string, slot int, id string) string {
	return prefix + strconv.Itoa(slot) + "-" + id
}

// parseCgroupName splits a name made by cgroupName.
func parseCgroupName(name string) (prefix string, slot int, id string, ok bool) {
	for _, p := range []string{runPrefix, sandboxPrefix} {
		rest, found := strings.CutPrefix(name, p)
		if !found {
			continue
		}
		n, id, found := strings.Cut(rest, "-")
		if !found || id == "" {
			return "", 0, "", false
		}
		slot, err := strconv.Atoi(n)
		return p, slot, id, err == nil
	}
	return "", 0, "", false
}

func slotOf(name string) (int, bool) {
	_, slot, _, ok := parseCgroupName(name)
	return slot, ok
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
