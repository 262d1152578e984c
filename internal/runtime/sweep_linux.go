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

// Cgroup names: "<kind>-<instance>-<slot>-<id>", kind "run" for one-shot
// runs and "sbx" for long-lived sandboxes. The instance tells apart the
// data directories (daemons, runners, test suites) sharing a host; the
// slot ties a cgroup to its uid range: a cgroup whose slot is free is
// stale, whoever made it.
const (
	kindRun     = "run"
	kindSandbox = "sbx"
)

type cgName struct {
	kind     string
	instance string
	slot     int
	id       string
}

func (n cgName) String() string {
	return n.kind + "-" + n.instance + "-" + strconv.Itoa(n.slot) + "-" + n.id
}

func parseCgroupName(name string) (cgName, bool) {
	f := strings.Split(name, "-")
	if len(f) != 4 || (f[0] != kindRun && f[0] != kindSandbox) || f[1] == "" || f[3] == "" {
		return cgName{}, false
	}
	slot, err := strconv.Atoi(f[2])
	if err != nil || slot < 0 {
		return cgName{}, false
	}
	return cgName{kind: f[0], instance: f[1], slot: slot, id: f[3]}, true
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
		n, ok := parseCgroupName(name)
		if !ok {
			continue
		}
		slot := n.slot
		held, err := r.ids.Reacquire(slot)
		if errors.Is(err, unix.EWOULDBLOCK) {
			continue // a live sandbox owns this slot
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Leftover, not Open: a v1 cgroup left in only some
		// controllers is stale too.
		if cg, err := r.cgroups.Leftover(name); err == nil {
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
