package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// prepareParentV2 enables the required controllers in the root's
// cgroup.subtree_control, creates <root>/soulbox and enables them in its
// subtree_control, so that every sandbox cgroup has the controllers.
func (h *Hierarchy) prepareParentV2() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.enableControllers(h.root); err != nil {
		return err
	}
	parent := filepath.Join(h.root, Parent)
	if err := h.fs.Mkdir(parent); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cgroup: create %s: %w", parent, cause(err))
	}
	return h.enableControllers(parent)
}

// enableControllers writes the required controllers missing from
// dir/cgroup.subtree_control.
func (h *Hierarchy) enableControllers(dir string) error {
	b, err := h.read(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	on := parseList(b)
	var add []string
	for _, ctl := range v2Required {
		if !slices.Contains(on, ctl) {
			add = append(add, "+"+ctl)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return h.write(dir, "cgroup.subtree_control", strings.Join(add, " "))
}

// nestTenantV2 makes the new tenant cgroup threaded and gives it its own
// pids controller. pids is a threaded controller, so the sandbox cgroup
// may keep its supervisor while the tenant's processes live below it
// (the no-internal-process rule binds domain controllers only); memory
// and cpu stay the sandbox's, shared by both.
func (c *Cgroup) nestTenantV2() error {
	if err := c.h.write(c.tenant, "cgroup.type", "threaded"); err != nil {
		return err
	}
	return c.h.write(c.dirs[0], "cgroup.subtree_control", "+pids")
}

// applyV2 writes the limits; see applyV1 for fresh.
func (c *Cgroup) applyV2(l Limits, fresh bool) error {
	h := c.h
	d := c.dirs[0]
	switch {
	case l.MemoryBytes > 0:
		if err := h.write(d, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return err
		}
	case !fresh:
		if err := h.write(d, "memory.max", "max"); err != nil {
			return err
		}
	}

	hasSwap, err := h.exists(d, "memory.swap.max")
	if err != nil {
		return err
	}
	if hasSwap {
		if err := h.write(d, "memory.swap.max", "0"); err != nil {
			return err
		}
	} else if err := h.checkNoSwap(); err != nil {
		return err
	}

	// On OOM, kill the whole cgroup rather than one victim, unless asked.
	group := "1"
	if l.OOMOneVictim {
		group = "0"
	}
	if err := h.write(d, "memory.oom.group", group); err != nil {
		return err
	}

	switch {
	case l.Pids > 0:
		if err := h.write(d, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	case !fresh:
		if err := h.write(d, "pids.max", "max"); err != nil {
			return err
		}
	}

	switch {
	case l.CPUQuota > 0:
		v := fmt.Sprintf("%d %d", l.cpuQuotaUsec(), CPUPeriod)
		if err := h.write(d, "cpu.max", v); err != nil {
			return err
		}
	case !fresh:
		if err := h.write(d, "cpu.max", fmt.Sprintf("max %d", CPUPeriod)); err != nil {
			return err
		}
	}
	return nil
}

// checkNoSwap is called when memory.swap.max is missing (a kernel without
// swap accounting). That is only acceptable if no swap is active: swap 0
// is a limit we promise, and we fail closed.
func (h *Hierarchy) checkNoSwap() error {
	b, err := h.fs.ReadFile(h.swapsPath)
	if err != nil {
		return fmt.Errorf("cgroup: memory.swap.max is missing and %s is unreadable: %w", h.swapsPath, cause(err))
	}
	if n := activeSwaps(b); n > 0 {
		return fmt.Errorf("cgroup: memory.swap.max is missing (no swap accounting) but %d swap device(s) are active: cannot disable swap for the sandbox", n)
	}
	return nil
}

// activeSwaps counts the entries of /proc/swaps (after its header).
func activeSwaps(b []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for first := true; sc.Scan(); first = false {
		if !first && strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n
}

func (c *Cgroup) statsV2(light bool) (Stats, error) {
	h := c.h
	d := c.dirs[0]
	var s Stats
	cs, err := h.readKeyed(d, "cpu.stat")
	if err != nil {
		return Stats{}, err
	}
	s.CPUUsage = usec(cs["usage_usec"])
	s.CPUUser = usec(cs["user_usec"])
	s.CPUSystem = usec(cs["system_usec"])

	if !light {
		if s.MemoryCurrent, err = h.readInt(d, "memory.current"); err != nil {
			return Stats{}, err
		}
	}
	if c.peak != nil {
		if s.MemoryPeak, err = readPeak(c.peak); err != nil {
			return Stats{}, fmt.Errorf("cgroup: read %s: %w", filepath.Join(d, "memory.peak"), err)
		}
	} else {
		s.MemoryPeak, err = h.readInt(d, "memory.peak")
		if errors.Is(err, fs.ErrNotExist) { // Linux < 5.19
			s.MemoryPeak, s.MemoryPeakUnavailable, err = 0, true, nil
		}
		if err != nil {
			return Stats{}, err
		}
	}

	ev, err := h.readKeyed(d, "memory.events")
	if err != nil {
		return Stats{}, err
	}
	// oom_kill counts every process killed, including the members of a
	// group kill; oom_group_kill counts group kills.
	s.OOMKills = max(ev["oom_kill"], ev["oom_group_kill"])
	if light {
		return s, nil
	}

	if s.PidsCurrent, err = h.readInt(d, "pids.current"); err != nil {
		return Stats{}, err
	}
	pe, err := h.readKeyed(d, "pids.events")
	if err != nil {
		return Stats{}, err
	}
	s.PidsLimitHits = pe["max"]
	return s, nil
}

// readPeak reads memory.peak through the descriptor that was reset.
func readPeak(f rwFile) (int64, error) {
	var buf [64]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, err
	}
	return parseSingle(buf[:n])
}

func (c *Cgroup) freezeV2(deadline time.Time) error {
	if err := c.setFrozenV2(true, deadline); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w (cgroup.freeze needs Linux 5.2)", err)
		}
		return errors.Join(err, c.setFrozenV2(false, time.Now().Add(c.h.freezeTimeout)))
	}
	return nil
}

// setFrozenV2 writes cgroup.freeze and waits for cgroup.events to report
// the new state.
func (c *Cgroup) setFrozenV2(frozen bool, deadline time.Time) error {
	h := c.h
	d := c.dirs[0]
	val := "0"
	if frozen {
		val = "1"
	}
	if err := h.write(d, "cgroup.freeze", val); err != nil {
		return err
	}
	want := int64(0)
	if frozen {
		want = 1
	}
	return pollUntil(deadline, fmt.Sprintf("%s to report frozen %d", filepath.Join(d, "cgroup.events"), want), func() (bool, error) {
		ev, err := h.readKeyed(d, "cgroup.events")
		if err != nil {
			return false, err
		}
		return ev["frozen"] == want, nil
	})
}

// resetCountersV2 baselines cpu.stat and the event counters and resets
// memory.peak through a descriptor kept open.
func (c *Cgroup) resetCountersV2() error {
	h := c.h
	d := c.dirs[0]
	if c.peak != nil {
		if err := c.peak.Close(); err != nil {
			return fmt.Errorf("cgroup: close memory.peak: %w", err)
		}
		c.peak = nil
	}
	c.base = baseline{}
	p := filepath.Join(d, "memory.peak")
	f, err := h.fs.OpenRW(p)
	switch {
	case err == nil:
		_, werr := f.Write([]byte("reset"))
		switch {
		case werr == nil:
			c.peak = f
		case errors.Is(werr, syscall.EINVAL):
			// Linux 5.19–6.11: root may open memory.peak for writing,
			// but the file has no write handler.
			c.base.peakUnavailable = true
			if err := f.Close(); err != nil {
				return fmt.Errorf("cgroup: close %s: %w", p, err)
			}
		default:
			return errors.Join(fmt.Errorf("cgroup: write \"reset\" to %s: %w", p, cause(werr)), f.Close())
		}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		// No memory.peak (< 5.19), or read-only (< 6.12) for non-root.
		c.base.peakUnavailable = true
	default:
		return fmt.Errorf("cgroup: open %s: %w", p, cause(err))
	}
	s, err := c.statsV2(false)
	if err != nil {
		return err
	}
	c.base.cpuUsage, c.base.cpuUser, c.base.cpuSystem = s.CPUUsage, s.CPUUser, s.CPUSystem
	c.base.oomKills = s.OOMKills
	c.base.pidsLimitHits = s.PidsLimitHits
	return nil
}
