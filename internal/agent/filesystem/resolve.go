package filesystem

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// maxPathLen is the longest path accepted, Linux's PATH_MAX.
const maxPathLen = 4096

// errInvalidPath marks a path rejected before it reaches the kernel.
var errInvalidPath = errors.New("invalid path")

// resolve turns a path from a request into a clean absolute path, as envd
// does: "~" and "~/..." expand to home, relative paths are relative to
// home, and "." and ".." elements are resolved lexically ("/.." is "/").
// An empty path is home. "~name" is refused (no other user's home).
// Symbolic links are left for the kernel to follow: the agent sees only
// the sandbox, so they cannot lead out of it.
func resolve(p, home string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: contains a NUL byte", errInvalidPath)
	}
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", errInvalidPath, maxPathLen)
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = home + p[1:]
	} else if strings.HasPrefix(p, "~") {
		return "", fmt.Errorf("%w: %q: only ~ and ~/ are expanded", errInvalidPath, p)
	}
	if !path.IsAbs(p) {
		p = home + "/" + p
	}
	p = path.Clean(p)
	if !path.IsAbs(p) {
		// Only when home itself is relative, which Config forbids.
		return "", fmt.Errorf("%w: does not resolve to an absolute path", errInvalidPath)
	}
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: longer than %d bytes", errInvalidPath, maxPathLen)
	}
	return p, nil
}
