// Package seccomp builds, compiles and installs the seccomp-bpf filter that
// confines every process in a SoulBox sandbox.
//
// The policy is plain Go data (see [Default]): a default [Action] and an
// ordered list of [Rule]s that name system calls as strings and may carry
// argument conditions. [Policy.Compile] turns a policy into a classic BPF
// program for the native architecture without libseccomp or cgo:
//
//  1. a syscall made under a foreign audit architecture (for example i386
//     through int 0x80) kills the process;
//  2. an x32 syscall number (bit 0x40000000 set) kills the process;
//  3. the syscall number is dispatched with a binary search over the
//     policy's sorted syscall numbers, so a call costs O(log n)
//     instructions rather than a linear scan;
//  4. anything the policy does not name gets the policy's default action.
//
// [Install] loads the program into the kernel for every thread of the
// calling process. It is meant to be called once, late in the sandbox init
// (internal/nsinit), after no_new_privs is set and just before the tenant's
// program is executed. A compiled program is an ordinary slice with no
// hidden state; it is safe to compile once and install from any goroutine.
//
// Only linux/amd64 is supported. On other architectures Compile returns
// [ErrUnsupportedArch] rather than an empty or partial filter.
//
// The resolved default policy is reviewed through a golden file,
// testdata/default.golden, produced by [Policy.Render]; regenerate it with
//
//	go test ./internal/seccomp -run TestRenderGolden -update
package seccomp
