package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// userHZ is the unit of cpuacct.stat (USER_HZ, 100 on every Linux ABI
// SoulBox supports).
const userHZ = 100

func (h *Hierarchy) prepareParentV1() error {
	seen := make(map[string]bool)
	for _, ctl := range v1Required {
		d := filepath.Join(h.v1[ctl], Parent)
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := h.fs.Mkdir(d); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cgroup: create %s: %w", d, cause(err))
		}
	}
	return nil
}

// applyV1 writes the limits. fresh is true on a newly created cgroup,
// where a zero limit needs no write; on reuse a zero limit is written as
// "unlimited".
func (c *Cgroup) applyV1(l Limits, fresh bool) error {
	h := c.h
	if err := c.memoryV1(c.ctl["memory"], c.memoryBytes(l), fresh); err != nil {
		return err
	}

	switch {
	case l.Pids > 0:
		if err := h.write(c.ctl["pids"], "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	case !fresh:
		if err := h.write(c.ctl["pids"], "pids.max", "max"); err != nil {
			return err
		}
	}

	cpu := c.ctl["cpu"]
	switch {
	case l.CPUQuota > 0:
		if err := h.write(cpu, "cpu.cfs_period_us", strconv.Itoa(CPUPeriod)); err != nil {
			return err
		}
		if err := h.write(cpu, "cpu.cfs_quota_us", strconv.FormatInt(l.cpuQuotaUsec(), 10)); err != nil {
			return err
		}
	case !fresh:
		if err := h.write(cpu, "cpu.cfs_quota_us", "-1"); err != nil {
			return err
		}
	}
	return nil
}

// memoryV1 sets up the memory cgroup mem: its limit (bytes; on a fresh
// cgroup 0 needs no write, else it means unlimited), no swap, and the
// kernel OOM killer on.
func (c *Cgroup) memoryV1(mem string, bytes int64, fresh bool) error {
	h := c.h
	hasMemsw, err := h.exists(mem, "memory.memsw.limit_in_bytes")
	if err != nil {
		return err
	}
	if bytes > 0 || !fresh {
		if err := c.setMemoryV1(mem, bytes, hasMemsw); err != nil {
			return err
		}
	}
	if !hasMemsw {
		// No swap accounting: keep the kernel from swapping this
		// cgroup's anonymous memory instead.
		if err := h.write(mem, "memory.swappiness", "0"); err != nil {
			return err
		}
	}
	// oom_kill_disable 0: on OOM the kernel kills, it does not pause.
	return h.write(mem, "memory.oom_control", "0")
}

// setMemoryV1 sets memory.limit_in_bytes and, with swap accounting,
// memory.memsw.limit_in_bytes to the same value (no swap). The kernel
// requires memsw ≥ limit at every step, so memsw goes first when the
// limit rises and last when it falls. bytes 0 means unlimited.
func (c *Cgroup) setMemoryV1(mem string, bytes int64, hasMemsw bool) error {
	h := c.h
	val, want := "-1", int64(math.MaxInt64)
	if bytes > 0 {
		val, want = strconv.FormatInt(bytes, 10), bytes
	}
	setLimit := func() error {
		err := h.write(mem, "memory.limit_in_bytes", val)
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w (usage is above the new limit and could not be reclaimed)", err)
		}
		return err
	}
	if !hasMemsw {
		return setLimit()
	}
	cur, err := h.readInt(mem, "memory.limit_in_bytes")
	if err != nil {
		return err
	}
	setMemsw := func() error { return h.write(mem, "memory.memsw.limit_in_bytes", val) }
	first, second := setLimit, setMemsw
	if want > cur {
		first, second = setMemsw, setLimit
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

func (c *Cgroup) statsV1(light bool) (Stats, error) {
	h := c.h
	var s Stats
	acct := c.ctl["cpuacct"]
	usage, err := h.readInt(acct, "cpuacct.usage")
	if err != nil {
		return Stats{}, err
	}
	s.CPUUsage = time.Duration(usage)
	mem := c.ctl["memory"]
	if light {
		if s.MemoryPeak, err = h.readInt(mem, "memory.max_usage_in_bytes"); err != nil {
			return Stats{}, err
		}
		oc, err := h.readKeyed(mem, "memory.oom_control")
		if err != nil {
			return Stats{}, err
		}
		s.OOMKills = oc["oom_kill"]
		return s, nil
	}
	hasSplit, err := h.exists(acct, "cpuacct.usage_user")
	if err != nil {
		return Stats{}, err
	}
	if hasSplit {
		u, err := h.readInt(acct, "cpuacct.usage_user")
		if err != nil {
			return Stats{}, err
		}
		sy, err := h.readInt(acct, "cpuacct.usage_sys")
		if err != nil {
			return Stats{}, err
		}
		s.CPUUser, s.CPUSystem = time.Duration(u), time.Duration(sy)
	} else {
		st, err := h.readKeyed(acct, "cpuacct.stat")
		if err != nil {
			return Stats{}, err
		}
		s.CPUUser = time.Duration(st["user"]) * time.Second / userHZ
		s.CPUSystem = time.Duration(st["system"]) * time.Second / userHZ
	}

	if s.MemoryPeak, err = h.readInt(mem, "memory.max_usage_in_bytes"); err != nil {
		return Stats{}, err
	}
	if s.MemoryCurrent, err = h.readInt(mem, "memory.usage_in_bytes"); err != nil {
		return Stats{}, err
	}
	oc, err := h.readKeyed(mem, "memory.oom_control")
	if err != nil {
		return Stats{}, err
	}
	s.OOMKills = oc["oom_kill"]

	pids := c.ctl["pids"]
	if s.PidsCurrent, err = h.readInt(pids, "pids.current"); err != nil {
		return Stats{}, err
	}
	pe, err := h.readKeyed(pids, "pids.events")
	if err != nil {
		return Stats{}, err
	}
	s.PidsLimitHits = pe["max"]
	return s, nil
}

// freezeV1 writes FROZEN until freezer.state reads FROZEN. A v1 cgroup can
// stay FREEZING while tasks fork; as runc does, it rewrites FROZEN and now
// and then thaws briefly, until the deadline, then thaws and fails.
func (c *Cgroup) freezeV1(deadline time.Time) error {
	h := c.h
	dir := c.ctl["freezer"]
	start := time.Now()
	backoff := 50 * time.Microsecond
	for i := 1; ; i++ {
		if i%50 == 0 {
			if err := h.write(dir, "freezer.state", "THAWED"); err != nil {
				return err
			}
			time.Sleep(time.Millisecond)
		}
		if err := h.write(dir, "freezer.state", "FROZEN"); err != nil {
			return errors.Join(err, c.thaw())
		}
		b, err := h.read(dir, "freezer.state")
		if err != nil {
			return errors.Join(err, c.thaw())
		}
		switch st := string(bytes.TrimSpace(b)); st {
		case "FROZEN":
			return nil
		case "FREEZING":
		default:
			return errors.Join(fmt.Errorf("cgroup: freeze %s: unexpected freezer.state %q", c.name, st), c.thaw())
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("cgroup: freeze %s: still FREEZING after %v", c.name, time.Since(start).Round(time.Millisecond)), c.thaw())
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Millisecond)
	}
}

// resetCountersV1 resets what v1 can reset and baselines the rest.
func (c *Cgroup) resetCountersV1() error {
	h := c.h
	mem, acct := c.ctl["memory"], c.ctl["cpuacct"]
	if err := h.write(mem, "memory.max_usage_in_bytes", "0"); err != nil {
		return err
	}
	// What the kernel offers does not change: asked once per cgroup (a
	// worker resets its cgroup before every run).
	if !c.v1feat.known {
		var err error
		if c.v1feat.memsw, err = h.exists(mem, "memory.memsw.max_usage_in_bytes"); err != nil {
			return err
		}
		if c.v1feat.split, err = h.exists(acct, "cpuacct.usage_user"); err != nil {
			return err
		}
		c.v1feat.known = true
	}
	if c.v1feat.memsw {
		if err := h.write(mem, "memory.memsw.max_usage_in_bytes", "0"); err != nil {
			return err
		}
	}
	if err := h.write(acct, "cpuacct.usage", "0"); err != nil {
		return err
	}
	// Baselines of what the writes above do not reset, read directly
	// (not through statsV1, which reads much more).
	c.base = baseline{}
	oc, err := h.readKeyed(mem, "memory.oom_control")
	if err != nil {
		return err
	}
	pe, err := h.readKeyed(c.ctl["pids"], "pids.events")
	if err != nil {
		return err
	}
	c.base.oomKills, c.base.pidsLimitHits = oc["oom_kill"], pe["max"]
	if !c.v1feat.split { // cpuacct.stat is not reset by the cpuacct.usage write
		st, err := h.readKeyed(acct, "cpuacct.stat")
		if err != nil {
			return err
		}
		c.base.cpuUser = time.Duration(st["user"]) * time.Second / userHZ
		c.base.cpuSystem = time.Duration(st["system"]) * time.Second / userHZ
	}
	return nil
}

// TaskFiles opens the v1 "tasks" file of every controller directory for
// writing (v2: ErrNotSupported). A thread that writes "0" to them moves only
// itself; unlike writing a pid to cgroup.procs, the kernel then skips the
// global cgroup_threadgroup_rwsem, whose write side waits for an RCU grace
// period (milliseconds). The kernel checks permission against the opener's
// credentials, so the descriptors may be handed to an unprivileged process
// that is to move itself, such as a sandbox init. The caller closes them.
func (c *Cgroup) TaskFiles() ([]*os.File, error) {
	if c.h.version != V1 {
		return nil, ErrNotSupported
	}
	var paths []string
	for _, d := range c.dirs {
		paths = append(paths, filepath.Join(d, "tasks"))
	}
	return openForWriting(paths)
}
