// Package limits defines the resource limits a sandbox or a run carries,
// their defaults and administrator maximums, and the parsing and validation
// of tenant-supplied values.
//
// Every limit always has a value: a request leaves a field unset to take the
// default, and zero, negative, unparsable or above-maximum values are
// rejected with an error rather than treated as "unlimited".
package limits

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every validation error, so callers can map it to
// a "bad request" answer in one place.
var ErrInvalid = errors.New("invalid limit")

// Limits is the full set of limits applied to one run or sandbox.
// The zero value is not valid; start from Defaults() or Resolve.
type Limits struct {
	MemoryBytes int64         // cgroup memory limit; swap is always 0
	CPUs        float64       // CPU quota as a fraction of cores (0.5 = half a core)
	CPUTime     time.Duration // CPU time of the whole sandbox (all processes)
	WallTime    time.Duration // wall-clock time from start to exit
	Pids        int64         // processes and threads of user code
	OutputBytes int64         // cap on stdout and on stderr, each
	DiskBytes   int64         // size of the writable layer (ENOSPC beyond)
	FileBytes   int64         // largest file a process may write (RLIMIT_FSIZE)
	OpenFiles   int64         // RLIMIT_NOFILE
	StackBytes  int64         // RLIMIT_STACK
	ShmBytes    int64         // size of /dev/shm
}

// Defaults returns the limits used when a request sets none.
func Defaults() Limits {
	return Limits{
		MemoryBytes: 512 << 20,
		CPUs:        1,
		CPUTime:     10 * time.Second,
		WallTime:    30 * time.Second,
		Pids:        256,
		OutputBytes: 16 << 20,
		DiskBytes:   256 << 20,
		FileBytes:   128 << 20,
		OpenFiles:   1024,
		StackBytes:  64 << 20,
		ShmBytes:    64 << 20,
	}
}

// Maximums returns the administrator maximums. A request above any of them
// is rejected. CPUs is capped at the number of cores of this host.
func Maximums() Limits {
	return Limits{
		MemoryBytes: 64 << 30,
		CPUs:        float64(runtime.NumCPU()),
		CPUTime:     24 * time.Hour,
		WallTime:    24 * time.Hour,
		Pids:        32768,
		OutputBytes: 256 << 20,
		DiskBytes:   64 << 30,
		FileBytes:   64 << 30,
		OpenFiles:   65536,
		StackBytes:  1 << 30,
		ShmBytes:    16 << 30,
	}
}

// Minimums are the smallest values that still let a sandbox start: the
// sandbox init and the dynamic loader need a few MiB.
func Minimums() Limits {
	return Limits{
		MemoryBytes: 8 << 20,
		CPUs:        0.01,
		CPUTime:     10 * time.Millisecond,
		WallTime:    10 * time.Millisecond,
		Pids:        1,
		OutputBytes: 1,
		DiskBytes:   1 << 20,
		FileBytes:   1,
		OpenFiles:   8,
		StackBytes:  128 << 10,
		ShmBytes:    64 << 10,
	}
}

// Validate checks every field against the minimums and maximums.
func (l Limits) Validate(max Limits) error {
	min := Minimums()
	var errs []error
	checkInt := func(name string, v, lo, hi int64, format func(int64) string) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%w: %s %s is outside [%s, %s]", ErrInvalid, name, format(v), format(lo), format(hi)))
		}
	}
	checkDur := func(name string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%w: %s %s is outside [%s, %s]", ErrInvalid, name, v, lo, hi))
		}
	}
	plain := func(v int64) string { return strconv.FormatInt(v, 10) }
	checkInt("memory", l.MemoryBytes, min.MemoryBytes, max.MemoryBytes, FormatBytes)
	if math.IsNaN(l.CPUs) || l.CPUs < min.CPUs || l.CPUs > max.CPUs {
		errs = append(errs, fmt.Errorf("%w: cpus %g is outside [%g, %g]", ErrInvalid, l.CPUs, min.CPUs, max.CPUs))
	}
	checkDur("cpu-time", l.CPUTime, min.CPUTime, max.CPUTime)
	checkDur("timeout", l.WallTime, min.WallTime, max.WallTime)
	checkInt("pids", l.Pids, min.Pids, max.Pids, plain)
	checkInt("output-limit", l.OutputBytes, min.OutputBytes, max.OutputBytes, FormatBytes)
	checkInt("disk", l.DiskBytes, min.DiskBytes, max.DiskBytes, FormatBytes)
	checkInt("file-size", l.FileBytes, min.FileBytes, max.FileBytes, FormatBytes)
	checkInt("open-files", l.OpenFiles, min.OpenFiles, max.OpenFiles, plain)
	checkInt("stack", l.StackBytes, min.StackBytes, max.StackBytes, FormatBytes)
	checkInt("shm", l.ShmBytes, min.ShmBytes, max.ShmBytes, FormatBytes)
	return errors.Join(errs...)
}

// ParseBytes parses a size such as "256M", "1.5G", "512KiB" or "1048576".
// Suffixes are binary (K = 1024). Zero and negative sizes are rejected.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: empty size", ErrInvalid)
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("%w: cannot parse size %q (use e.g. 256M, 1G, 512K)", ErrInvalid, s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: cannot parse size %q", ErrInvalid, s)
	}
	v := f * float64(uint64(1)<<sh)
	if v < 1 {
		return 0, fmt.Errorf("%w: size %q must be positive", ErrInvalid, s)
	}
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	return int64(v), nil
}

// ParseDuration parses "2s", "500ms", "1m30s" or a bare number of seconds
// ("2.5"). Zero and negative durations are rejected.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	d, err := time.ParseDuration(t)
	if err != nil {
		f, ferr := strconv.ParseFloat(t, 64)
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > float64(math.MaxInt64/int64(time.Second)) {
			return 0, fmt.Errorf("%w: cannot parse duration %q (use e.g. 5s, 500ms)", ErrInvalid, s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: duration %q must be positive", ErrInvalid, s)
	}
	return d, nil
}

// ParseCPUs parses a CPU quota in cores ("0.5", "2").
func ParseCPUs(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: cannot parse cpus %q (use e.g. 0.5, 2)", ErrInvalid, s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("%w: cpus %q must be positive", ErrInvalid, s)
	}
	return f, nil
}

// ParseCount parses a positive integer count (pids, open files).
func ParseCount(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: cannot parse count %q", ErrInvalid, s)
	}
	if n <= 0 {
		return 0, fmt.Errorf("%w: count %q must be positive", ErrInvalid, s)
	}
	return n, nil
}

// FormatBytes renders a byte count with the largest exact binary unit.
func FormatBytes(v int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return strconv.FormatInt(v>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

// Names are the limits Set knows, as the command line's flags name them.
var Names = []string{"memory", "cpus", "cpu-time", "timeout", "pids", "output-limit", "disk", "file-size", "open-files", "stack"}

// Set parses value as the limit called name, as the CLI's flags spell it
// (memory, cpus, cpu-time, timeout, pids, output-limit, disk, file-size,
// open-files, stack), into l.
func (l *Limits) Set(name, value string) error {
	var err error
	switch name {
	case "memory":
		l.MemoryBytes, err = ParseBytes(value)
	case "output-limit":
		l.OutputBytes, err = ParseBytes(value)
	case "disk":
		l.DiskBytes, err = ParseBytes(value)
	case "file-size":
		l.FileBytes, err = ParseBytes(value)
	case "stack":
		l.StackBytes, err = ParseBytes(value)
	case "pids":
		l.Pids, err = ParseCount(value)
	case "open-files":
		l.OpenFiles, err = ParseCount(value)
	case "cpus":
		l.CPUs, err = ParseCPUs(value)
	case "cpu-time":
		l.CPUTime, err = ParseDuration(value)
	case "timeout":
		l.WallTime, err = ParseDuration(value)
	default:
		err = fmt.Errorf("%w: unknown limit %q", ErrInvalid, name)
	}
	return err
}
