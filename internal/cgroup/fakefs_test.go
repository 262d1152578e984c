package cgroup

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeFS is a cgroup v2 file system faked in a temporary directory: Mkdir
// creates the interface files the kernel would, writes are recorded (as
// paths relative to the root) and some are given their kernel effect,
// and errors can be injected per file.
type fakeFS struct {
	root string

	mu     sync.Mutex
	writes []fakeWrite
	fail   map[string]error // relative path → error returned by WriteFile
	// readFail: relative path → error returned by ReadFile (as for the
	// cgroup.procs of a v2 threaded cgroup).
	readFail map[string]error
	omit     map[string]bool      // interface files Mkdir does not create
	peaks    map[string]*fakePeak // open memory.peak files, by relative path
	// stuckFreeze makes cgroup.freeze writes leave cgroup.events as is.
	stuckFreeze bool
	// ignoreKill makes cgroup.kill writes have no effect.
	ignoreKill bool
	// peakNoWrite makes writes to memory.peak fail with EINVAL, as on
	// Linux 5.19–6.11.
	peakNoWrite bool
	// files are the interface files Mkdir creates (v2Files by default).
	files map[string]string
}

type fakeWrite struct{ File, Value string }

func (w fakeWrite) String() string { return fmt.Sprintf("%s=%q", w.File, w.Value) }

// v2Files are the interface files of a non-root v2 cgroup, with their
// initial contents.
var v2Files = map[string]string{
	"cgroup.procs":           "",
	"cgroup.type":            "domain\n",
	"cgroup.subtree_control": "",
	"cgroup.controllers":     "cpu memory pids",
	"cgroup.events":          "populated 0\nfrozen 0\n",
	"cgroup.freeze":          "0\n",
	"cgroup.kill":            "",
	"cpu.max":                "max 100000\n",
	"cpu.stat":               "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
	"memory.max":             "max\n",
	"memory.swap.max":        "max\n",
	"memory.oom.group":       "0\n",
	"memory.current":         "0\n",
	"memory.peak":            "0\n",
	"memory.events":          "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
	"pids.max":               "max\n",
	"pids.current":           "0\n",
	"pids.events":            "max 0\n",
}

// newFakeV2 returns a v2 Hierarchy over a fake root offering cpuset, cpu,
// io, memory and pids, with no swap active.
func newFakeV2(t *testing.T) (*Hierarchy, *fakeFS) {
	t.Helper()
	f := &fakeFS{root: t.TempDir(), fail: map[string]error{}, omit: map[string]bool{}, peaks: map[string]*fakePeak{}}
	for name, content := range map[string]string{
		"cgroup.controllers":     "cpuset cpu io memory pids\n",
		"cgroup.subtree_control": "",
		"cgroup.procs":           "1\n",
	} {
		f.put(t, name, content)
	}
	f.put(t, "swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
	h, err := newV2(f, f.root)
	if err != nil {
		t.Fatalf("newV2: %v", err)
	}
	h.swapsPath = filepath.Join(f.root, "swaps")
	return h, f
}

func (f *fakeFS) abs(rel string) string { return filepath.Join(f.root, rel) }

func (f *fakeFS) rel(name string) string {
	r, err := filepath.Rel(f.root, name)
	if err != nil || strings.HasPrefix(r, "..") {
		panic("fakeFS: path outside the fake root: " + name)
	}
	return r
}

// put sets a file's content directly (as the kernel would update it).
func (f *fakeFS) put(t *testing.T, rel, content string) {
	t.Helper()
	if err := os.WriteFile(f.abs(rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeFS) get(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(f.abs(rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// takeWrites returns and forgets the writes recorded so far.
func (f *fakeFS) takeWrites() []fakeWrite {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.writes
	f.writes = nil
	return w
}

func (f *fakeFS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	ferr := f.readFail[f.rel(name)]
	f.mu.Unlock()
	if ferr != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: ferr}
	}
	return os.ReadFile(name)
}
func (f *fakeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return os.ReadDir(name)
}
func (f *fakeFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

func (f *fakeFS) Mkdir(name string) error {
	if err := os.Mkdir(name, 0o755); err != nil {
		return err
	}
	files := f.files
	if files == nil {
		files = v2Files
	}
	for file, content := range files {
		if f.omit[file] {
			continue
		}
		if err := os.WriteFile(filepath.Join(name, file), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Rmdir removes a fake cgroup: EBUSY while it has processes or child
// cgroups, as the kernel does.
func (f *fakeFS) Rmdir(name string) error {
	ents, err := os.ReadDir(name)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EBUSY}
		}
	}
	if b, err := os.ReadFile(filepath.Join(name, "cgroup.procs")); err == nil && strings.TrimSpace(string(b)) != "" {
		return &fs.PathError{Op: "rmdir", Path: name, Err: syscall.EBUSY}
	}
	return os.RemoveAll(name)
}

// WriteFile records the write, fails it if asked to, and emulates the
// kernel's effect for cgroup.subtree_control, cgroup.freeze, cgroup.kill
// and cgroup.procs.
func (f *fakeFS) WriteFile(name string, data []byte) error {
	rel := f.rel(name)
	f.mu.Lock()
	f.writes = append(f.writes, fakeWrite{rel, string(data)})
	ferr := f.fail[rel]
	f.mu.Unlock()
	if ferr != nil {
		return &fs.PathError{Op: "write", Path: name, Err: ferr}
	}
	old, err := os.ReadFile(name) // the file must exist: no O_CREAT on cgroupfs
	if err != nil {
		return err
	}
	val := string(data)
	dir := filepath.Dir(name)
	switch filepath.Base(name) {
	case "cgroup.subtree_control":
		on := strings.Fields(string(old))
		for _, tok := range strings.Fields(val) {
			ctl := tok[1:]
			switch tok[0] {
			case '+':
				if !slices.Contains(on, ctl) {
					on = append(on, ctl)
				}
			case '-':
				on = slices.DeleteFunc(on, func(s string) bool { return s == ctl })
			default:
				return &fs.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
			}
		}
		val = strings.Join(on, " ") + "\n"
	case "memory.oom_control":
		v := strings.Replace(string(old), "oom_kill_disable 0", "oom_kill_disable "+val, 1)
		val = strings.Replace(v, "oom_kill_disable 1", "oom_kill_disable "+val, 1)
	case "memory.limit_in_bytes", "memory.memsw.limit_in_bytes":
		// The kernel keeps memsw ≥ limit: a write breaking it is EINVAL.
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return &fs.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
		}
		if n == -1 {
			n = v1Unlimited
		}
		lim, memsw := readFakeInt(dir, "memory.limit_in_bytes"), readFakeInt(dir, "memory.memsw.limit_in_bytes")
		if filepath.Base(name) == "memory.limit_in_bytes" && memsw >= 0 && n > memsw ||
			filepath.Base(name) == "memory.memsw.limit_in_bytes" && n < lim {
			return &fs.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
		}
		val = strconv.FormatInt(n, 10) + "\n"
	case "memory.max_usage_in_bytes":
		val = strconv.FormatInt(readFakeInt(dir, "memory.usage_in_bytes"), 10) + "\n"
	case "cpuacct.usage":
		for _, f := range []string{"cpuacct.usage_user", "cpuacct.usage_sys"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("0\n"), 0o644); err != nil {
					return err
				}
			}
		}
	case "freezer.state":
		if val == "FROZEN" && f.stuckFreeze {
			val = "FREEZING"
		}
	case "cgroup.freeze":
		if f.stuckFreeze {
			break
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.events"),
			[]byte("populated "+populated(dir)+"\nfrozen "+strings.TrimSpace(val)+"\n"), 0o644); err != nil {
			return err
		}
	case "cgroup.kill":
		if f.ignoreKill {
			break
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
			return err
		}
	case "cgroup.procs":
		val = string(old) + val + "\n"
		if err := os.WriteFile(filepath.Join(dir, "cgroup.events"), []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(name, []byte(val), 0o644)
}

const v1Unlimited = 9223372036854771712

// readFakeInt reads a single-value fake file; -1 if it is missing.
func readFakeInt(dir, file string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func populated(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return "0"
	}
	return "1"
}

// OpenRW returns a fake memory.peak whose reset is local to it, as in
// Linux ≥ 6.12.
func (f *fakeFS) OpenRW(name string) (rwFile, error) {
	if _, err := os.Stat(name); err != nil {
		return nil, err
	}
	p := &fakePeak{fs: f, path: name}
	f.mu.Lock()
	f.peaks[f.rel(name)] = p
	f.mu.Unlock()
	return p, nil
}

// fakePeak reads as the file's content until written; a write resets
// it to memory.current for reads through this file only.
type fakePeak struct {
	fs     *fakeFS
	path   string
	mu     sync.Mutex
	reset  bool
	local  int64
	closed bool
}

func (p *fakePeak) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fs.peakNoWrite {
		return 0, &fs.PathError{Op: "write", Path: p.path, Err: syscall.EINVAL}
	}
	cur, err := os.ReadFile(filepath.Join(filepath.Dir(p.path), "memory.current"))
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return 0, err
	}
	p.reset, p.local = true, v
	return len(b), nil
}

// bump raises the local watermark, as a new allocation would.
func (p *fakePeak) bump(v int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.local = max(p.local, v)
}

func (p *fakePeak) ReadAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, os.ErrClosed
	}
	if !p.reset {
		c, err := os.ReadFile(p.path)
		if err != nil {
			return 0, err
		}
		return copy(b, c[off:]), nil
	}
	return copy(b, strconv.FormatInt(p.local, 10)+"\n"), nil
}

func (p *fakePeak) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}
