package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fsys is the narrow view of cgroupfs the package uses. The real one is
// osFS; tests substitute a fake that records writes and injects errors.
type fsys interface {
	ReadFile(name string) ([]byte, error)
	// WriteFile writes data with a single write(2) to an existing file,
	// without O_CREAT or O_TRUNC: cgroupfs takes each write as one value.
	WriteFile(name string, data []byte) error
	Mkdir(name string) error
	Rmdir(name string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// OpenRW opens a file for reading and writing (memory.peak, whose
	// reset is local to the open file description).
	OpenRW(name string) (rwFile, error)
}

// rwFile is an open cgroupfs file read with pread and written with write.
type rwFile interface {
	io.ReaderAt
	io.Writer
	io.Closer
}

type osFS struct{}

// ReadFile and WriteFile use plain system calls, not os.File: cgroupfs
// files are pollable, so every os.File would also be added to and removed
// from the runtime's epoll set, and a judge worker reads and writes a
// handful of them for every case.
func (osFS) ReadFile(name string) ([]byte, error) {
	fd, err := openRetry(name, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		buf = slices.Grow(buf, 512)
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func (osFS) WriteFile(name string, data []byte) error {
	fd, err := openRetry(name, unix.O_WRONLY)
	if err != nil {
		return err
	}
	for {
		_, err = unix.Write(fd, data)
		if err != unix.EINTR {
			break
		}
	}
	cerr := unix.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "write", Path: name, Err: err}
	}
	if cerr != nil {
		return &fs.PathError{Op: "close", Path: name, Err: cerr}
	}
	return nil
}

func openRetry(name string, mode int) (int, error) {
	for {
		fd, err := unix.Open(name, mode|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

func (osFS) Mkdir(name string) error                    { return os.Mkdir(name, 0o755) }
func (osFS) Rmdir(name string) error                    { return rmdir(name) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }
func (osFS) Stat(name string) (fs.FileInfo, error)      { return os.Stat(name) }

func (osFS) OpenRW(name string) (rwFile, error) {
	return os.OpenFile(name, os.O_RDWR, 0)
}

// rmdir removes an empty directory (cgroup directories hold only
// interface files, which rmdir(2) accepts; os.Remove would first try
// unlink(2)).
func rmdir(name string) error {
	if err := syscallRmdir(name); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// cause strips an *fs.PathError so messages don't name the path twice;
// the errno stays in the chain for errors.Is.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// write writes val to dir/file through h's file system and checks it.
func (h *Hierarchy) write(dir, file, val string) error {
	p := filepath.Join(dir, file)
	if err := h.fs.WriteFile(p, []byte(val)); err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", val, p, cause(err))
	}
	return nil
}

func (h *Hierarchy) read(dir, file string) ([]byte, error) {
	p := filepath.Join(dir, file)
	b, err := h.fs.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cgroup: read %s: %w", p, cause(err))
	}
	return b, nil
}

// exists reports whether dir/file exists; errors other than "not
// found" are returned.
func (h *Hierarchy) exists(dir, file string) (bool, error) {
	p := filepath.Join(dir, file)
	_, err := h.fs.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("cgroup: stat %s: %w", p, cause(err))
	}
}

// readInt reads a single-value file. "max" reads as -1.
// isDir reports whether dir exists and is a directory.
func (h *Hierarchy) isDir(dir string) bool {
	fi, err := h.fs.Stat(dir)
	return err == nil && fi.IsDir()
}

func (h *Hierarchy) readInt(dir, file string) (int64, error) {
	b, err := h.read(dir, file)
	if err != nil {
		return 0, err
	}
	v, err := parseSingle(b)
	if err != nil {
		return 0, fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, file), err)
	}
	return v, nil
}

// readKeyed reads a flat-keyed file ("key value" per line).
func (h *Hierarchy) readKeyed(dir, file string) (map[string]int64, error) {
	b, err := h.read(dir, file)
	if err != nil {
		return nil, err
	}
	m, err := parseKeyed(b)
	if err != nil {
		return nil, fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, file), err)
	}
	return m, nil
}

func (h *Hierarchy) readPids(dir string) ([]int, error) {
	b, err := h.read(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	pids, err := parsePids(b)
	if err != nil {
		return nil, fmt.Errorf("cgroup: parse %s: %w", filepath.Join(dir, "cgroup.procs"), err)
	}
	return pids, nil
}

// parseSingle parses a single-value cgroup file; "max" is -1.
func parseSingle(b []byte) (int64, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad value %q: %w", s, err)
	}
	return v, nil
}

// parseKeyed parses a flat-keyed file such as cpu.stat or memory.events.
// Lines with a non-numeric value are rejected; blank lines are skipped.
func parseKeyed(b []byte) (map[string]int64, error) {
	m := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		n, err := parseSingle([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		m[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func parsePids(b []byte) ([]int, error) {
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad pid %q", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// parseList parses a space-separated controller list (cgroup.controllers,
// cgroup.subtree_control).
func parseList(b []byte) []string {
	return strings.Fields(string(b))
}
