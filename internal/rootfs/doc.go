// Package rootfs builds a sandbox's root file system.
//
// Host side: EnsureHostTemplate prepares the built-in "host" template — a
// small skeleton (curated /etc, merged-/usr symlinks) used as the overlay
// lower layer — and EnsureImageTemplate the same for an imported image
// (internal/image); CloneTree makes read-only detached copies of the trees
// such as /usr with open_tree(2).
//
// Sandbox side: Assemble runs in the sandbox init, inside fresh user and
// mount namespaces. It mounts a size-limited tmpfs (the writable layer), an
// overlay of the template over it, attaches the cloned trees, builds a
// minimal /dev and a fresh /proc, pivots into the result, detaches the old
// root, and masks sensitive /proc entries.
package rootfs
