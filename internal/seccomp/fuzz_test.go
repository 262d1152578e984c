//go:build linux

package seccomp

import (
	"testing"
)

// FuzzCompiledPolicy feeds arbitrary seccomp_data to the compiled default
// policy and checks both BPF interpreters against the reference evaluation
// of the policy data. Each input is also replayed with its syscall number
// folded into the table's range and with the native arch, so that the
// fuzzer spends most of its time on syscalls the policy names.
//
// Seeds live in testdata/fuzz/FuzzCompiledPolicy and run on every go test.
func FuzzCompiledPolicy(f *testing.F) {
	a := requireNative(f)
	p := Default()
	c := mustCompile(f, p, a)
	f.Fuzz(func(t *testing.T, arch, nr uint32, a0, a1, a2, a3, a4, a5 uint64) {
		base := seccompData{nr: nr, arch: arch, args: [maxArgs]uint64{a0, a1, a2, a3, a4, a5}}
		folded := base
		folded.nr = nr % 512
		for _, d := range []seccompData{base, folded} {
			for _, ar := range []uint32{d.arch, a.audit} {
				d.arch = ar
				if got, want := c.eval(t, d), reference(p, a, d); got != want {
					t.Fatalf("%+v: got %s, want %s", d, retString(got), retString(want))
				}
			}
		}
	})
}
