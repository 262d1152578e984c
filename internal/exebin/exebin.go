// Package exebin installs a binary embedded in soulbox as a file of its
// own, once, named by its hash: the small sandbox init (internal/initbin)
// and the full soulbox behind the command-line fast path
// (internal/fullbin). A file is written to a temporary name and renamed,
// so concurrent installs are safe and a half-written file is never run.
package exebin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Embedded is a binary carried inside soulbox, and the hex SHA-256 of it
// computed when it was built.
type Embedded struct {
	Data []byte // nil: built without it
	Sum  string
}

// Embed makes the Embedded of a go:embed pair (the sum file ends in a
// newline).
func Embed(data []byte, sum string) Embedded {
	return Embedded{Data: data, Sum: strings.TrimSpace(sum)}
}

// Install makes dir/<prefix><first 16 hex digits of the sum> hold the
// binary (mode 0555) and returns its path, and whether it wrote it now;
// dir is created with dirMode if missing. An existing file is kept when
// it is a regular file of the right size owned by this user and writable
// by no one else (the name carries the content's hash).
func (e Embedded) Install(dir, prefix string, dirMode os.FileMode) (path string, fresh bool, err error) {
	if len(e.Sum) < 16 {
		return "", false, ErrNoSum
	}
	name := prefix + e.Sum[:16]
	path = filepath.Join(dir, name)
	if fi, err := os.Lstat(path); err == nil && usable(fi, int64(len(e.Data))) {
		return path, false, nil
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", false, fmt.Errorf("install %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return "", false, fmt.Errorf("install %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(e.Data)
	if err == nil {
		err = tmp.Chmod(0o555)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", false, fmt.Errorf("install %s: %w", name, err)
	}
	return path, true, nil
}

func usable(fi os.FileInfo, size int64) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode().IsRegular() && fi.Size() == size &&
		int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o022 == 0
}

// ErrNoSum means a binary was embedded without its checksum.
var ErrNoSum = errors.New("the embedded binary has no checksum (build with make build)")

// Execveat executes the file open at fd with argv and env (execveat(2)
// with AT_EMPTY_PATH: the file needs no path). It returns only on failure.
func Execveat(fd int, argv, env []string) error {
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty := []byte{0}
	_, _, e := syscall.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	runtime.KeepAlive(argvp)
	runtime.KeepAlive(envp)
	runtime.KeepAlive(empty)
	return fmt.Errorf("execveat: %w", e)
}
