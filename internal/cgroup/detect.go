package cgroup

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

const (
	defaultRoot      = "/sys/fs/cgroup"
	defaultMountinfo = "/proc/self/mountinfo"
	defaultSwaps     = "/proc/swaps"
)

// v1Known are the cgroup v1 controller names, to tell them apart from
// mount options in mountinfo's super options.
var v1Known = []string{
	"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb",
	"memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
}

// v2Known are the cgroup v2 controller names (and interface file
// prefixes).
var v2Known = []string{"cpu", "cpuset", "hugetlb", "io", "memory", "misc", "pids", "rdma", "dmem"}

// Detect inspects the host: cgroup v2 if /sys/fs/cgroup is a cgroup2 mount
// whose root offers the cpu, memory and pids controllers, else cgroup v1 if
// the memory, cpu, cpuacct, pids and freezer controllers are mounted. The
// error, wrapping ErrUnavailable, names what is missing for each.
func Detect() (*Hierarchy, error) {
	var v2err error
	if ok, err := isCgroup2(defaultRoot); err != nil {
		v2err = err
	} else if !ok {
		v2err = fmt.Errorf("%s is not a cgroup2 mount", defaultRoot)
	} else {
		h, err := newV2(osFS{}, defaultRoot)
		if err == nil {
			return h, nil
		}
		v2err = err
	}

	f, err := os.Open(defaultMountinfo)
	if err != nil {
		return nil, fmt.Errorf("%w: v2: %v; v1: %v", ErrUnavailable, v2err, err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("%w: v2: %v; v1: %s: %v", ErrUnavailable, v2err, defaultMountinfo, err)
	}
	h, v1err := newV1(osFS{}, mounts)
	if v1err != nil {
		return nil, fmt.Errorf("%w: v2: %v; v1: %v", ErrUnavailable, v2err, v1err)
	}
	return h, nil
}

// newV2 returns a v2 Hierarchy rooted at root, after checking that its
// cgroup.controllers has the required controllers.
func newV2(fsys fsys, root string) (*Hierarchy, error) {
	h := &Hierarchy{
		version:       V2,
		fs:            fsys,
		root:          root,
		swapsPath:     defaultSwaps,
		freezeTimeout: defaultFreezeTimeout,
	}
	b, err := h.read(root, "cgroup.controllers")
	if err != nil {
		return nil, err
	}
	h.controllers = parseList(b)
	slices.Sort(h.controllers)
	var missing []string
	for _, ctl := range v2Required {
		if !slices.Contains(h.controllers, ctl) {
			missing = append(missing, ctl)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("controllers %s missing from %s/cgroup.controllers (have %q)",
			strings.Join(missing, ", "), root, strings.Join(h.controllers, " "))
	}
	return h, nil
}

// newV1 returns a v1 Hierarchy from the controller → mount point map of
// parseMountinfo, after checking that the required controllers are there.
func newV1(fsys fsys, mounts map[string]string) (*Hierarchy, error) {
	h := &Hierarchy{
		version:       V1,
		fs:            fsys,
		v1:            make(map[string]string),
		swapsPath:     defaultSwaps,
		freezeTimeout: defaultFreezeTimeout,
	}
	var missing []string
	for _, ctl := range v1Required {
		m, ok := mounts[ctl]
		if !ok {
			missing = append(missing, ctl)
			continue
		}
		h.v1[ctl] = m
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("controllers %s not mounted as cgroup v1 (see /proc/self/mountinfo)", strings.Join(missing, ", "))
	}
	for ctl := range mounts {
		h.controllers = append(h.controllers, ctl)
	}
	slices.Sort(h.controllers)
	return h, nil
}

// parseMountinfo maps every cgroup v1 controller to its first mount
// point, from /proc/self/mountinfo (see proc(5)).
func parseMountinfo(r io.Reader) (map[string]string, error) {
	mounts := make(map[string]string)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		fields := strings.Fields(pre)
		rest := strings.Fields(post)
		if len(fields) < 5 || len(rest) < 3 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		if rest[0] != "cgroup" {
			continue
		}
		mnt := unescapeMount(fields[4])
		for opt := range strings.SplitSeq(rest[2], ",") {
			if !slices.Contains(v1Known, opt) {
				continue
			}
			if _, dup := mounts[opt]; !dup {
				mounts[opt] = mnt
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return mounts, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
