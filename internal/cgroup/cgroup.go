package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrNotSupported is returned for an operation the detected
	// hierarchy cannot do (for example [Cgroup.FD] on cgroup v1).
	ErrNotSupported = errors.New("cgroup: not supported on this hierarchy")
	// ErrUnavailable is returned by [Detect] when the host has no usable
	// cgroup set-up; the message names what is missing.
	ErrUnavailable = errors.New("cgroup: no usable cgroup hierarchy")
	// ErrInvalidName is returned for a cgroup name that is empty or could
	// leave the soulbox subtree.
	ErrInvalidName = errors.New("cgroup: invalid name")
	// ErrInvalidLimits is returned for negative or non-finite limits.
	ErrInvalidLimits = errors.New("cgroup: invalid limits")
	// ErrNotEmpty is returned by [Cgroup.Reset] when the cgroup still
	// holds processes.
	ErrNotEmpty = errors.New("cgroup: cgroup still has processes")
)

// Parent is the directory, under each hierarchy root, that holds every
// SoulBox cgroup.
const Parent = "soulbox"

// CPUPeriod is the CFS period used for CPU quotas, in microseconds.
const CPUPeriod = 100000

// minCPUQuota is the kernel's smallest accepted CFS quota (1 ms).
const minCPUQuota = 1000

// Version is a cgroup hierarchy version.
type Version int

// The hierarchy versions.
const (
	V1 Version = 1
	V2 Version = 2
)

func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	default:
		return "Version(" + strconv.Itoa(int(v)) + ")"
	}
}

// Limits to apply; zero means "not requested" (the caller validated
// values already). Swap is always disabled and the kernel OOM killer
// always enabled, whatever the limits.
type Limits struct {
	MemoryBytes int64   // memory.max / memory.limit_in_bytes
	CPUQuota    float64 // cores, e.g. 0.5; quota = cores × CPUPeriod
	Pids        int64   // pids.max
	// TenantPids, if positive, creates a nested cgroup (TenantDir) with
	// this pids.max, for the processes a supervisor living in the cgroup
	// starts for the tenant (see [Cgroup.TenantFiles]). Pids then bounds
	// supervisor and tenant together, and the difference is the
	// supervisor's own: a fork bomb fills only the nested limit.
	TenantPids int64
	// SupervisorMemory, with TenantPids and MemoryBytes, gives the
	// supervisor memory of its own where the hierarchy allows it (v1):
	// the tenant cgroup is then also nested in the memory hierarchy,
	// limited to MemoryBytes, and the cgroup to MemoryBytes +
	// SupervisorMemory, so a tenant at its limit reclaims and meets the
	// OOM killer alone while the supervisor's own allocations still
	// succeed. On v2 the tenant cgroup is threaded, which memory cannot
	// be: it is ignored there and MemoryBytes bounds both.
	SupervisorMemory int64
	// OOMOneVictim makes the OOM killer end one process (the one with the
	// highest oom_score) instead of the whole cgroup (v2 memory.oom.group
	// 0 instead of 1): for cgroups whose supervisor must survive a tenant's
	// OOM (a long-lived sandbox's agent, a worker's init). v1 always kills
	// one victim.
	OOMOneVictim bool
}

func (l Limits) validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("%w: memory %d bytes", ErrInvalidLimits, l.MemoryBytes)
	case l.Pids < 0:
		return fmt.Errorf("%w: pids %d", ErrInvalidLimits, l.Pids)
	case l.TenantPids < 0 || (l.TenantPids > 0 && l.Pids > 0 && l.TenantPids > l.Pids):
		return fmt.Errorf("%w: tenant pids %d (cgroup pids %d)", ErrInvalidLimits, l.TenantPids, l.Pids)
	case l.SupervisorMemory < 0 || (l.SupervisorMemory > 0 && l.TenantPids == 0):
		return fmt.Errorf("%w: supervisor memory %d bytes (tenant pids %d)", ErrInvalidLimits, l.SupervisorMemory, l.TenantPids)
	case l.CPUQuota < 0 || math.IsNaN(l.CPUQuota) || math.IsInf(l.CPUQuota, 0):
		return fmt.Errorf("%w: cpu quota %v cores", ErrInvalidLimits, l.CPUQuota)
	}
	if l.CPUQuota > 0 {
		if q := l.cpuQuotaUsec(); q < minCPUQuota {
			return fmt.Errorf("%w: cpu quota %v cores is %dµs per %dµs period, below the kernel minimum of %dµs",
				ErrInvalidLimits, l.CPUQuota, q, CPUPeriod, minCPUQuota)
		}
	}
	return nil
}

func (l Limits) cpuQuotaUsec() int64 {
	return int64(math.Round(l.CPUQuota * CPUPeriod))
}

// Stats are a cgroup's counters. After [Cgroup.Reset] they count from the
// reset (see Reset for which counters are baselined in user space).
type Stats struct {
	CPUUsage time.Duration // total CPU time (v2 cpu.stat usage_usec; v1 cpuacct.usage, ns)
	// CPUUser and CPUSystem split the time between user and kernel mode.
	// On v1 they come from the tick-sampled cpustat (cpuacct.usage_user,
	// cpuacct.usage_sys), so they have scheduler-tick granularity and
	// need not add up to CPUUsage.
	CPUUser   time.Duration
	CPUSystem time.Duration
	// MemoryPeak is the high-water mark of memory use in bytes
	// (v2 memory.peak, v1 memory.max_usage_in_bytes).
	MemoryPeak int64
	// MemoryPeakUnavailable is set when the kernel has no memory.peak
	// (v2 before Linux 5.19), or cannot reset it after [Cgroup.Reset]
	// (before 6.12); MemoryPeak is then 0.
	MemoryPeakUnavailable bool
	MemoryCurrent         int64 // bytes now charged
	// OOMKills counts processes killed by the OOM killer in this cgroup.
	OOMKills int64
	// PidsCurrent is the number of tasks now in the cgroup.
	PidsCurrent int64
	// PidsLimitHits counts forks refused because pids.max was reached.
	PidsLimitHits int64
}

// Hierarchy is the detected host set-up. It is created by [Detect], holds
// no resources, and is safe for concurrent use.
type Hierarchy struct {
	version Version
	fs      fsys

	// root is the cgroup2 mount (v2 only).
	root string
	// v1 maps each required controller to its mount (v1 only).
	v1 map[string]string
	// controllers lists every controller available, for reporting.
	controllers []string

	swapsPath     string        // /proc/swaps
	freezeTimeout time.Duration // bound on Freeze and Thaw

	mu sync.Mutex // serialises creation of the parent (v2 subtree_control)
}

// v1Required are the v1 controllers every sandbox cgroup is created in,
// freezer first so that a process added with AddProc is freezable before
// it is limited.
var v1Required = []string{"freezer", "memory", "cpu", "cpuacct", "pids"}

// v2Required are the controllers enabled for the soulbox subtree.
var v2Required = []string{"cpu", "memory", "pids"}

const defaultFreezeTimeout = 5 * time.Second

// Version reports the hierarchy's cgroup version.
func (h *Hierarchy) Version() Version { return h.version }

// Controllers lists the controllers available on the host, sorted (v2:
// the root's cgroup.controllers; v1: every mounted v1 controller).
func (h *Hierarchy) Controllers() []string { return slices.Clone(h.controllers) }

// Path returns the directory under which the soulbox subtree for
// controller is created: the cgroup2 mount on v2, the controller's mount
// on v1. ok is false for a controller SoulBox does not use.
func (h *Hierarchy) Path(controller string) (dir string, ok bool) {
	if h.version == V2 {
		if slices.Contains(v2Required, controller) {
			return h.root, true
		}
		return "", false
	}
	dir, ok = h.v1[controller]
	return dir, ok
}

func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > 255:
		return fmt.Errorf("%w: longer than 255 bytes", ErrInvalidName)
	case strings.ContainsAny(name, "/\x00\n"):
		return fmt.Errorf("%w %q: contains '/', NUL or newline", ErrInvalidName, name)
	case name == "." || strings.Contains(name, ".."):
		return fmt.Errorf("%w %q: contains '..' or is '.'", ErrInvalidName, name)
	}
	// Names of interface files (memory.max, tasks, ...) are taken in the
	// parent directory.
	prefix, _, _ := strings.Cut(name, ".")
	if prefix != name && (prefix == "cgroup" || slices.Contains(v1Known, prefix) || slices.Contains(v2Known, prefix)) ||
		slices.Contains([]string{"tasks", "notify_on_release", "release_agent"}, name) {
		return fmt.Errorf("%w %q: may collide with a cgroupfs interface file", ErrInvalidName, name)
	}
	return nil
}

// newCgroup computes the directories of cgroup name without touching the
// file system.
func (h *Hierarchy) newCgroup(name string) *Cgroup {
	c := &Cgroup{h: h, name: name, ctl: make(map[string]string)}
	if h.version == V2 {
		d := filepath.Join(h.root, Parent, name)
		c.dirs = []string{d}
		for _, ctl := range v2Required {
			c.ctl[ctl] = d
		}
		return c
	}
	for _, ctl := range v1Required {
		d := filepath.Join(h.v1[ctl], Parent, name)
		c.ctl[ctl] = d
		if !slices.Contains(c.dirs, d) { // co-mounted controllers (cpu,cpuacct)
			c.dirs = append(c.dirs, d)
		}
	}
	return c
}

// List returns the names of the cgroups under soulbox/, in any controller
// (on v1 a partly removed cgroup may be left in only some of them).
func (h *Hierarchy) List() ([]string, error) {
	var names []string
	for _, d := range h.newCgroup("x").dirs {
		entries, err := h.fs.ReadDir(filepath.Dir(d))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: list %s: %w", filepath.Dir(d), err)
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// Create creates <root>/soulbox/<name> (in every controller on v1) and
// applies every limit in l, checking each write. If a limit cannot be
// applied, the partially created cgroup is removed and the error
// returned. A cgroup that already exists is an error wrapping
// fs.ErrExist; use [Hierarchy.Open] to adopt it.
func (h *Hierarchy) Create(name string, l Limits) (_ *Cgroup, retErr error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	if err := h.prepareParent(); err != nil {
		return nil, err
	}
	c := h.newCgroup(name)
	var created []string
	defer func() {
		if retErr == nil {
			return
		}
		for _, d := range slices.Backward(created) {
			if err := h.fs.Rmdir(d); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cgroup: remove partially created %s: %w", d, cause(err)))
			}
		}
	}()
	for _, d := range c.dirs {
		if err := h.fs.Mkdir(d); err != nil {
			return nil, fmt.Errorf("cgroup: create %s: %w", d, cause(err))
		}
		created = append(created, d)
	}
	if h.version == V1 && l.SupervisorMemory > 0 && l.MemoryBytes > 0 { // validate: implies TenantPids
		// Set before apply, which then gives the cgroup the
		// supervisor's share on top.
		c.tenantMem = filepath.Join(c.ctl["memory"], TenantDir)
	}
	if err := c.apply(l, true); err != nil {
		return nil, err
	}
	if l.TenantPids > 0 {
		d := filepath.Join(c.ctl["pids"], TenantDir)
		for _, dir := range []string{d, c.tenantMem} {
			if dir == "" {
				continue
			}
			if err := h.fs.Mkdir(dir); err != nil {
				return nil, fmt.Errorf("cgroup: create %s: %w", dir, cause(err))
			}
			created = append(created, dir)
		}
		c.tenant = d
		if h.version == V2 {
			if err := c.nestTenantV2(); err != nil {
				return nil, err
			}
		}
		if err := c.applyTenant(l); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// TenantDir is the name of the nested cgroup Limits.TenantPids creates.
const TenantDir = "tenant"

// applyTenant writes the nested cgroup's pids.max and, where it is in the
// memory hierarchy too, its memory limit, if there is one.
func (c *Cgroup) applyTenant(l Limits) error {
	if c.tenant == "" {
		return nil
	}
	v := "max"
	if l.TenantPids > 0 {
		v = strconv.FormatInt(l.TenantPids, 10)
	}
	if err := c.h.write(c.tenant, "pids.max", v); err != nil {
		return err
	}
	if c.tenantMem == "" {
		return nil
	}
	return c.memoryV1(c.tenantMem, l.MemoryBytes, false)
}

// memoryBytes is the memory limit of the cgroup itself: the tenant's and,
// when the tenant cgroup is nested in the memory hierarchy, the
// supervisor's share on top.
func (c *Cgroup) memoryBytes(l Limits) int64 {
	if c.tenantMem != "" && l.MemoryBytes > 0 {
		return l.MemoryBytes + l.SupervisorMemory
	}
	return l.MemoryBytes
}

// TenantFiles opens, for writing, the files through which a thread of
// the cgroup's supervisor moves itself into the nested tenant cgroup by
// writing "0" to each: the tenant's v1 "tasks" files (pids, and memory
// when Limits.SupervisorMemory nested it there too), or its v2
// "cgroup.threads" (the tenant cgroup is threaded). Processes such a
// thread forks are born there and count against its limits. The kernel
// checks such writes against the opener's credentials (v1; v2 since
// Linux 5.16), so the descriptors may be handed to an unprivileged
// supervisor; on older v2 kernels the writer's own credentials count, so
// the cgroup.procs files the kernel checks are given to owner (the
// supervisor's host uid). The descriptors reach no other cgroup: writes
// through them move only tasks the writer can see (its own pid
// namespace) into the tenant cgroup. The caller closes them. Without a
// tenant cgroup it returns ErrNotSupported.
func (c *Cgroup) TenantFiles(owner int) ([]*os.File, error) {
	if c.tenant == "" {
		return nil, ErrNotSupported
	}
	paths := []string{filepath.Join(c.tenant, "tasks")}
	if c.tenantMem != "" {
		paths = append(paths, filepath.Join(c.tenantMem, "tasks"))
	}
	if c.h.version == V2 {
		paths = []string{filepath.Join(c.tenant, "cgroup.threads")}
		for _, d := range []string{c.dirs[0], c.tenant} {
			if err := os.Chown(filepath.Join(d, "cgroup.procs"), owner, -1); err != nil {
				return nil, fmt.Errorf("cgroup: delegate %s: %w", d, err)
			}
		}
	}
	return openForWriting(paths)
}

// openForWriting opens every path for writing, or none: on an error the
// files opened so far are closed.
func openForWriting(paths []string) ([]*os.File, error) {
	var files []*os.File
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("cgroup: open %s: %w", p, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// Open re-opens the existing cgroup name (after a daemon restart). Its
// limits are left as they are. A missing directory is an error wrapping
// fs.ErrNotExist. Counter baselines from a previous [Cgroup.Reset] are
// not recovered.
func (h *Hierarchy) Open(name string) (*Cgroup, error) {
	c, err := h.Leftover(name)
	if err != nil {
		return nil, err
	}
	for _, d := range c.dirs {
		fi, err := h.fs.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("cgroup: open %s: %w", d, cause(err))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("cgroup: open %s: not a directory", d)
		}
	}
	return c, nil
}

// Leftover returns a handle on whatever remains of cgroup name, for
// Destroy only: on v1 a cgroup whose creation or removal was cut short
// may exist in some controllers and not others, which Open refuses.
// Destroy kills what the remaining directories hold and removes them.
func (h *Hierarchy) Leftover(name string) (*Cgroup, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	c := h.newCgroup(name)
	if d := filepath.Join(c.ctl["pids"], TenantDir); h.isDir(d) {
		c.tenant = d
	}
	if h.version == V1 {
		if d := filepath.Join(c.ctl["memory"], TenantDir); h.isDir(d) {
			c.tenantMem = d
		}
	}
	return c, nil
}

func (h *Hierarchy) prepareParent() error {
	if h.version == V2 {
		return h.prepareParentV2()
	}
	return h.prepareParentV1()
}

// Cgroup is one sandbox's cgroup. It is created by [Hierarchy.Create] or
// [Hierarchy.Open] and released by [Cgroup.Destroy] (which removes it) or
// [Cgroup.Close] (which leaves it in place). Its methods are safe for
// concurrent use; Freeze, Thaw, Kill, Reset and Destroy are serialised.
type Cgroup struct {
	h    *Hierarchy
	name string
	// dirs are the distinct cgroup directories: one on v2; one per
	// controller mount on v1.
	dirs []string
	// ctl maps each controller to its directory.
	ctl map[string]string
	// tenant is the nested tenant cgroup's directory (in the pids
	// hierarchy on v1), if Limits.TenantPids created one.
	tenant string
	// tenantMem is the tenant's directory in the v1 memory hierarchy,
	// if Limits.SupervisorMemory nested it there too.
	tenantMem string

	mu   sync.Mutex
	base baseline
	// peak is memory.peak held open after a v2 Reset: the kernel keeps
	// the reset watermark per open file.
	peak rwFile
	// v1feat caches which optional v1 counter files exist (under mu).
	v1feat struct{ known, memsw, split bool }
}

// baseline holds counter values at the last Reset for counters the kernel
// cannot reset; Stats subtracts them.
type baseline struct {
	cpuUsage, cpuUser, cpuSystem time.Duration
	oomKills                     int64
	pidsLimitHits                int64
	peakUnavailable              bool
}

// Name returns the name given to Create or Open.
func (c *Cgroup) Name() string { return c.name }

// Dirs returns the cgroup's directories (one on v2, one per distinct
// controller mount on v1), for diagnostics.
func (c *Cgroup) Dirs() []string { return slices.Clone(c.dirs) }

// FD opens the cgroup directory for clone3's CLONE_INTO_CGROUP
// (syscall.SysProcAttr.UseCgroupFD and CgroupFD). The caller owns the
// returned descriptor (O_PATH|O_DIRECTORY|O_CLOEXEC) and must close it.
// On v1 it returns ErrNotSupported; use AddProc.
func (c *Cgroup) FD() (int, error) {
	if c.h.version != V2 {
		return -1, ErrNotSupported
	}
	fd, err := openDirPath(c.dirs[0])
	if err != nil {
		return -1, fmt.Errorf("cgroup: open %s: %w", c.dirs[0], err)
	}
	return fd, nil
}

// AddProc moves process pid into the cgroup (into every controller on
// v1). On error the process may be in some controllers only: the caller
// must kill it.
func (c *Cgroup) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup: add pid %d: invalid pid", pid)
	}
	s := strconv.Itoa(pid)
	for _, d := range c.dirs {
		if err := c.h.write(d, "cgroup.procs", s); err != nil {
			return err
		}
	}
	return nil
}

// Procs lists, sorted and without duplicates, the processes in the cgroup
// and in any cgroup below it.
func (c *Cgroup) Procs() ([]int, error) {
	return c.procs(false)
}

// procs walks every directory of the cgroup; with ignoreMissing, a
// directory that no longer exists counts as empty.
func (c *Cgroup) procs(ignoreMissing bool) ([]int, error) {
	var all []int
	var walk func(dir string) error
	walk = func(dir string) error {
		pids, err := c.h.readPids(dir)
		if errors.Is(err, syscall.EOPNOTSUPP) && dir == c.tenant {
			// A v2 threaded cgroup has no cgroup.procs to read: its
			// processes are listed by the domain above it.
			return nil
		}
		if err != nil {
			return err
		}
		all = append(all, pids...)
		ents, err := c.h.fs.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cgroup: list %s: %w", dir, cause(err))
		}
		for _, e := range ents {
			// A nested cgroup removed during the walk is not an error.
			if e.IsDir() {
				if err := walk(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		}
		return nil
	}
	for _, d := range c.dirs {
		if err := walk(d); err != nil {
			if ignoreMissing && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// Stats reads the cgroup's counters.
func (c *Cgroup) Stats() (Stats, error) { return c.stats(false) }

// RunStats reads only what a run's result needs, with fewer file reads
// than Stats: CPUUsage, MemoryPeak (and MemoryPeakUnavailable) and
// OOMKills; the other fields are zero.
func (c *Cgroup) RunStats() (Stats, error) { return c.stats(true) }

func (c *Cgroup) stats(light bool) (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var (
		s   Stats
		err error
	)
	if c.h.version == V2 {
		s, err = c.statsV2(light)
	} else {
		s, err = c.statsV1(light)
	}
	if err != nil {
		return Stats{}, err
	}
	b := c.base
	s.CPUUsage = max(0, s.CPUUsage-b.cpuUsage)
	s.CPUUser = max(0, s.CPUUser-b.cpuUser)
	s.CPUSystem = max(0, s.CPUSystem-b.cpuSystem)
	s.OOMKills = max(0, s.OOMKills-b.oomKills)
	s.PidsLimitHits = max(0, s.PidsLimitHits-b.pidsLimitHits)
	if b.peakUnavailable {
		s.MemoryPeak, s.MemoryPeakUnavailable = 0, true
	}
	return s, nil
}

// MemoryCache is the page cache charged to the cgroup, in bytes (v2
// memory.stat "file", v1 "total_cache"): files written in its tmpfs, and
// files read. Not part of Stats, which the run path reads often.
func (c *Cgroup) MemoryCache() (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h.version == V2 {
		m, err := c.h.readKeyed(c.dirs[0], "memory.stat")
		return m["file"], err
	}
	m, err := c.h.readKeyed(c.ctl["memory"], "memory.stat")
	return m["total_cache"], err
}

// Freeze stops every process in the cgroup and waits, for at most a few
// seconds, until the kernel reports the cgroup frozen. On failure the
// cgroup is thawed again.
func (c *Cgroup) Freeze() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.freeze(time.Now().Add(c.h.freezeTimeout))
}

// Thaw resumes the processes stopped by Freeze.
func (c *Cgroup) Thaw() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.thaw()
}

// freeze freezes the cgroup, giving up (and thawing) at deadline.
func (c *Cgroup) freeze(deadline time.Time) error {
	if c.h.version == V2 {
		return c.freezeV2(deadline)
	}
	return c.freezeV1(deadline)
}

func (c *Cgroup) thaw() error {
	if c.h.version == V2 {
		return c.setFrozenV2(false, time.Now().Add(c.h.freezeTimeout))
	}
	return c.h.write(c.ctl["freezer"], "freezer.state", "THAWED")
}

// Kill sends SIGKILL to every process in the cgroup. It does not wait for
// them to exit; Destroy does.
func (c *Cgroup) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kill(time.Now().Add(c.h.freezeTimeout))
}

// kill signals every process; a freeze it needs gives up at deadline.
// It first lifts the CPU quota: processes being killed need no CPU limit,
// and the task-based CFS throttling of Linux 6.18 can leave a cgroup's
// throttled tasks stranded, never running again to act on the signal
// (seen with a few hundred hostile processes in one cgroup); changing the
// quota unthrottles them. Reset or SetLimits sets it again.
func (c *Cgroup) kill(deadline time.Time) error {
	lerr := c.liftCPUQuota()
	if err := c.signalAll(deadline); err != nil {
		return errors.Join(lerr, err)
	}
	return lerr
}

// LiftCPUQuota removes the CPU quota of a cgroup whose processes are to
// be killed (see kill): call it before a SIGKILL sent another way (to a
// pid namespace's init).
func (c *Cgroup) LiftCPUQuota() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liftCPUQuota()
}

func (c *Cgroup) liftCPUQuota() error {
	dir, file, none := c.cpuQuotaFile()
	return c.h.write(dir, file, none)
}

// cpuQuotaFile names the file that holds the CPU quota, and the value in
// it that means no quota.
func (c *Cgroup) cpuQuotaFile() (dir, file, none string) {
	if c.h.version == V2 {
		return c.dirs[0], "cpu.max", "max"
	}
	return c.ctl["cpu"], "cpu.cfs_quota_us", "-1"
}

func (c *Cgroup) signalAll(deadline time.Time) error {
	if c.h.version == V2 {
		ok, err := c.h.exists(c.dirs[0], "cgroup.kill")
		if err != nil {
			return err
		}
		if ok {
			return c.h.write(c.dirs[0], "cgroup.kill", "1")
		}
		// Linux < 5.14: no cgroup.kill.
	}
	return c.killFrozen(deadline)
}

// killFrozen freezes the cgroup so that nothing can fork, signals every
// process it lists, and thaws so that the signals are delivered. If the
// freeze does not complete, the processes are signalled anyway and the
// freeze error is returned.
func (c *Cgroup) killFrozen(deadline time.Time) error {
	ferr := c.freeze(deadline)
	if ferr != nil {
		ferr = fmt.Errorf("cgroup: kill %s: processes signalled without a complete freeze: %w", c.name, ferr)
	}
	pids, err := c.procs(true)
	if err != nil {
		return errors.Join(ferr, err, c.thaw())
	}
	var kerrs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			kerrs = append(kerrs, fmt.Errorf("cgroup: kill pid %d: %w", pid, err))
		}
	}
	return errors.Join(ferr, errors.Join(kerrs...), c.thaw())
}

// empty reports whether no process is left in the cgroup or below it.
func (c *Cgroup) empty() (bool, error) {
	if c.h.version == V2 {
		ev, err := c.h.readKeyed(c.dirs[0], "cgroup.events")
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return ev["populated"] == 0, nil
	}
	pids, err := c.procs(true)
	if err != nil {
		return false, err
	}
	return len(pids) == 0, nil
}

const (
	minBackoff = 50 * time.Microsecond
	maxBackoff = 50 * time.Millisecond
	killRetry  = 100 * time.Millisecond
)

// Destroy kills every process, waits (bounded by ctx, polling with
// backoff) until the cgroup is empty, and removes its directories, and
// those of any cgroup created below it, in every controller. It is
// idempotent: destroying a removed cgroup succeeds. Pass a context that
// a client disconnect does not cancel.
func (c *Cgroup) Destroy(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.drain(ctx); err != nil {
		return err
	}
	var errs []error
	for _, d := range c.dirs {
		if err := c.removeTree(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	if c.peak != nil {
		if err := c.peak.Close(); err != nil {
			errs = append(errs, fmt.Errorf("cgroup: close memory.peak: %w", err))
		}
		c.peak = nil
	}
	return errors.Join(errs...)
}

// Drain kills every process and waits (bounded by ctx, polling with
// backoff) until the cgroup is empty, leaving it in place for Reset.
func (c *Cgroup) Drain(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drain(ctx)
}

// drain re-sends the kill every killRetry while processes remain, so that
// a kill that raced with a fork (v1 freeze timeouts) is repeated.
func (c *Cgroup) drain(ctx context.Context) error {
	var (
		killErr  error
		lastKill time.Time
		backoff  = minBackoff
	)
	for {
		empty, err := c.empty()
		if err != nil {
			return fmt.Errorf("cgroup: drain %s: %w", c.name, err)
		}
		if empty {
			return nil
		}
		if time.Since(lastKill) >= killRetry {
			deadline := time.Now().Add(c.h.freezeTimeout)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			killErr = c.kill(deadline)
			lastKill = time.Now()
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return fmt.Errorf("cgroup: drain %s: processes left: %w", c.name, errors.Join(err, killErr))
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// removeTree removes dir and the cgroups below it, deepest first. A
// missing directory is success; EBUSY (a task still being released) is
// retried until ctx ends.
func (c *Cgroup) removeTree(ctx context.Context, dir string) error {
	backoff := minBackoff
	for {
		// Try rmdir first: the common case (no nested cgroup) then needs
		// no directory listing. EBUSY means nested cgroups or processes.
		err := c.h.fs.Rmdir(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("cgroup: remove %s: %w", dir, cause(err))
		}
		ents, lerr := c.h.fs.ReadDir(dir)
		if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
			return fmt.Errorf("cgroup: list %s: %w", dir, cause(lerr))
		}
		nested := false
		for _, e := range ents {
			if e.IsDir() {
				nested = true
				if err := c.removeTree(ctx, filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
		if nested {
			continue
		}
		if serr := sleepCtx(ctx, backoff); serr != nil {
			return fmt.Errorf("cgroup: remove %s: %w", dir, errors.Join(cause(err), serr))
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// Close releases what the Cgroup holds open (memory.peak after a v2
// Reset) and leaves the cgroup in place. Destroy also does this.
func (c *Cgroup) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peak == nil {
		return nil
	}
	err := c.peak.Close()
	c.peak = nil
	if err != nil {
		return fmt.Errorf("cgroup: close memory.peak: %w", err)
	}
	return nil
}

// Reset prepares an empty cgroup for reuse: it thaws it, re-applies l
// (a zero field removes that limit) and resets the counters.
//
// Reset in the kernel: v1 memory.max_usage_in_bytes (and memsw) and
// cpuacct.usage (which also zeroes cpuacct.usage_user/usage_sys); v2
// memory.peak, whose reset the kernel (≥ 6.12) keeps per open file, so the
// Cgroup keeps that file open until Destroy or Close — a Cgroup re-opened
// with Open reads the unreset peak again.
//
// Baselined (read now and subtracted by Stats): v2 cpu.stat
// usage/user/system, v1 cpuacct.stat (only used on kernels without
// cpuacct.usage_user), OOM kills (memory.events / memory.oom_control),
// pids.events max. On v2 kernels older than 6.12 the peak cannot be reset
// and Stats reports MemoryPeakUnavailable until Destroy.
//
// It returns ErrNotEmpty if the cgroup still has processes.
func (c *Cgroup) Reset(l Limits) error {
	if err := l.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pids, err := c.procs(false)
	if err != nil {
		return err
	}
	if len(pids) > 0 {
		return fmt.Errorf("%w: %s has %d", ErrNotEmpty, c.name, len(pids))
	}
	if err := c.thaw(); err != nil {
		return err
	}
	return c.rebase(l)
}

// Rebase re-applies l and resets the counters as Reset does, on a cgroup
// that keeps some processes: a worker's init, which stays between the
// programs it runs. The counters then count from now, the init included.
func (c *Cgroup) Rebase(l Limits) error {
	if err := l.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rebase(l)
}

// ResetCounters resets the counters as Rebase does, leaving the limits.
func (c *Cgroup) ResetCounters() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resetCounters()
}

func (c *Cgroup) rebase(l Limits) error {
	if err := c.apply(l, false); err != nil {
		return err
	}
	return c.resetCounters()
}

func (c *Cgroup) resetCounters() error {
	if c.h.version == V2 {
		return c.resetCountersV2()
	}
	return c.resetCountersV1()
}

// SetLimits changes the limits of a cgroup that may have processes (a
// memory limit below the current use fails).
func (c *Cgroup) SetLimits(l Limits) error {
	if err := l.validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apply(l, false)
}

func (c *Cgroup) apply(l Limits, fresh bool) error {
	var err error
	if c.h.version == V2 {
		err = c.applyV2(l, fresh)
	} else {
		err = c.applyV1(l, fresh)
	}
	if err != nil || fresh {
		return err // Create applies the tenant's limit once it exists
	}
	return c.applyTenant(l)
}

// sleepCtx sleeps for d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// pollUntil calls cond with backoff until it reports done, fails, or the
// deadline passes.
func pollUntil(deadline time.Time, what string, cond func() (bool, error)) error {
	backoff := 100 * time.Microsecond
	for {
		done, err := cond()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: timed out waiting for %s", what)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Millisecond)
	}
}

func usec(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// CPUCounters are the counters that show whether a cgroup's CPU quota
// lets its tasks run: CPU time used, bandwidth periods that elapsed while
// it had runnable tasks, and periods it ended throttled (v1 cpu.stat and
// cpuacct.usage; v2 cpu.stat).
type CPUCounters struct {
	Usage     time.Duration
	Periods   int64
	Throttled int64
}

// CPUCounters reads them.
func (c *Cgroup) CPUCounters() (CPUCounters, error) {
	h := c.h
	if h.version == V2 {
		cs, err := h.readKeyed(c.dirs[0], "cpu.stat")
		if err != nil {
			return CPUCounters{}, err
		}
		return CPUCounters{Usage: usec(cs["usage_usec"]), Periods: cs["nr_periods"], Throttled: cs["nr_throttled"]}, nil
	}
	usage, err := h.readInt(c.ctl["cpuacct"], "cpuacct.usage")
	if err != nil {
		return CPUCounters{}, err
	}
	cs, err := h.readKeyed(c.ctl["cpu"], "cpu.stat")
	if err != nil {
		return CPUCounters{}, err
	}
	return CPUCounters{Usage: time.Duration(usage), Periods: cs["nr_periods"], Throttled: cs["nr_throttled"]}, nil
}

// RequeueCPU lifts the CPU quota and sets it again: the kernel then
// unthrottles every throttled task of the cgroup. It releases tasks that
// the task-based CFS throttling of Linux 6.18 can leave stranded (see
// kill). Without a quota it does nothing.
func (c *Cgroup) RequeueCPU() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir, file, none := c.cpuQuotaFile()
	b, err := c.h.read(dir, file)
	if err != nil {
		return err
	}
	quota := strings.TrimSpace(string(b))
	if strings.HasPrefix(quota, none) {
		return nil
	}
	if err := c.h.write(dir, file, none); err != nil {
		return err
	}
	return c.h.write(dir, file, quota)
}
