//go:build linux

package seccomp

import (
	"fmt"
	"strings"
)

// Render describes the policy resolved for the native architecture, one
// line per system call in the architecture's table: number, name, and the
// action with its conditions. The text is stable, so it can be kept in a
// golden file and reviewed in diffs. An invalid policy renders as a single
// line with the error.
func (p Policy) Render() string {
	a, err := nativeArch()
	if err != nil {
		return fmt.Sprintf("error: %v\n", err)
	}
	return p.renderFor(a)
}

func (p Policy) renderFor(a arch) string {
	calls, err := p.resolve(a)
	if err != nil {
		return fmt.Sprintf("error: %v\n", err)
	}
	named := make(map[uint32]outcome, len(calls))
	for _, c := range calls {
		named[c.nr] = c.outcome
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# seccomp policy for %s (AUDIT_ARCH %#x)\n", a.name, a.audit)
	fmt.Fprintf(&b, "# arch != %s: %v\n", a.name, KillProcess)
	if a.x32Bit != 0 {
		fmt.Fprintf(&b, "# nr & %#x (x32 ABI): %v\n", a.x32Bit, KillProcess)
	}
	fmt.Fprintf(&b, "# nr not in the table below: %v (default)\n", p.Default)
	for _, s := range a.syscalls {
		o, ok := named[s.nr]
		if !ok {
			o = outcome{final: p.Default}
		}
		fmt.Fprintf(&b, "%-4d %-24s %v\n", s.nr, s.name, o)
	}
	return b.String()
}
