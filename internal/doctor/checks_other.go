//go:build !linux

package doctor

import "runtime"

// Checks returns the default host checks. SoulBox runs on Linux only.
func Checks() []Check {
	return []Check{{
		Name: "operating system", Required: true,
		Fix:   "SoulBox sandboxes need a Linux host",
		Probe: func() (bool, string) { return false, runtime.GOOS + " is not Linux" },
	}}
}
