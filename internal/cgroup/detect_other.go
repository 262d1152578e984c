//go:build !linux

package cgroup

import "syscall"

func isCgroup2(string) (bool, error) { return false, ErrNotSupported }

func openDirPath(string) (int, error) { return -1, ErrNotSupported }

func syscallRmdir(dir string) error { return syscall.Rmdir(dir) }
