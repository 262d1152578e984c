// Package execpath finds a command on the PATH of a given environment —
// the environment a process will get, not the caller's own (the sandbox
// init and the agent have none).
package execpath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultPath is searched when env has no PATH.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// Look returns name itself if it contains a slash, else the first
// executable regular file called name in env's PATH.
func Look(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", name)
}
