package cgroup

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// isCgroup2 reports whether dir is the root of a cgroup2 mount.
func isCgroup2(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// openDirPath opens dir as an O_PATH descriptor, which clone3 accepts for
// CLONE_INTO_CGROUP.
func openDirPath(dir string) (int, error) {
	return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

func syscallRmdir(dir string) error { return unix.Rmdir(dir) }
