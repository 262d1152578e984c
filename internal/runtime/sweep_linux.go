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

// Cgroup names: "run-<slot>-<id>" for one-shot runs and
// "sbx-<instance>-<slot>-<id>" for long-lived sandboxes, where instance
// tells apart the data directories (daemons) sharing a host. The slot ties
// a cgroup to its uid range: a cgroup whose slot is free is stale.
const (
	kindRun     = "run"
	kindSandbox = "sbx"
)

type cgName struct {
	kind     string
	instance string // sandboxes only
	slot     int
	id       string
}

func (n cgName) String() string {
	if n.kind == kindSandbox {
		return n.kind + "-" + n.instance + "-" + strconv.Itoa(n.slot) + "-" + n.id
	}
	return n.kind + "-" + strconv.Itoa(n.slot) + "-" + n.id
}

func parseCgroupName(name string) (cgName, bool) {
	f := strings.Split(name, "-")
	var n cgName
	switch {
	case len(f) == 3 && f[0] == kindRun:
		n = cgName{kind: kindRun, id: f[2]}
	case len(f) == 4 && f[0] == kindSandbox && f[1] != "":
		n = cgName{kind: kindSandbox, instance: f[1], id: f[3]}
		f = f[1:]
	default:
		return cgName{}, false
	}
	slot, err := strconv.Atoi(f[1])
	if err != nil || slot < 0 || n.id == "" {
		return cgName{}, false
	}
	n.slot = slot
	return n, true
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
