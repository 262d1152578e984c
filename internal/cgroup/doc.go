// Package cgroup creates, limits, measures and tears down the per-sandbox
// control groups of SoulBox, on cgroup v2 (first class) and on cgroup v1
// (fallback for hybrid hosts).
//
// A host's set-up is detected once with [Detect], which returns a
// [Hierarchy]. Every sandbox cgroup lives at <root>/soulbox/<name> (on v1,
// under each controller's mount: memory, cpu, cpuacct, pids, freezer).
// [Hierarchy.Create] makes the cgroup and applies every requested limit;
// each write is checked and a limit that cannot be applied fails the
// creation (fail closed) and removes what was created. [Cgroup.Destroy]
// kills every process, waits until the cgroup is empty and removes it in
// every controller.
//
// Errors name the cgroupfs file involved and wrap the kernel's errno, so
// callers can test them with errors.Is (for example unix.EBUSY when a v1
// memory limit is below current usage, or fs.ErrNotExist). The paths in
// the messages are host paths: map them before showing them to tenants.
package cgroup
