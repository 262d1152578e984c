// Package image keeps the root file systems that templates other than
// the built-in host template are made of. An image is imported once from
// a tar stream (the output of mmdebstrap, `docker export`, `tar -C dir -c
// .`) into DIR/NAME/rootfs, owned by the host's root; sandboxes of the
// template see its /etc through a skeleton and its /usr (and the other
// top-level trees) as read-only clones, like the host template's (see
// internal/rootfs).
//
// Images are host-wide, like uid ranges and the cgroup subtree: every
// SoulBox instance on the host (whatever its data directory) finds them
// under Dir().
package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"time"
)

// DefaultDir is where images live unless SOULBOX_IMAGES_DIR says otherwise.
const DefaultDir = "/var/lib/soulbox/images"

// Dir is the image directory of this host: $SOULBOX_IMAGES_DIR, or
// DefaultDir.
func Dir() string {
	if d := os.Getenv("SOULBOX_IMAGES_DIR"); d != "" {
		return d
	}
	return DefaultDir
}

// Builtin are the template names that are not images: the host template
// and its aliases (E2B's default "base" and the code interpreter's).
var Builtin = []string{"host", "base", "code-interpreter-v1"}

// IsBuiltin reports whether name is a built-in template (the host's).
func IsBuiltin(name string) bool { return slices.Contains(Builtin, name) }

var (
	// ErrNotFound: no image of that name.
	ErrNotFound = errors.New("no such template")
	// ErrInvalid: a bad name or a tar stream that cannot be imported.
	ErrInvalid = errors.New("invalid template")
	// ErrExists: importing over an image without asking to replace it.
	ErrExists = errors.New("template exists")
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName checks an image name: 1-63 of a-z, 0-9, '.', '_', '-',
// starting with a letter or digit, and not a built-in template's.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name %q must be 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", ErrInvalid, name)
	}
	if IsBuiltin(name) {
		return fmt.Errorf("%w: %q is a built-in template", ErrInvalid, name)
	}
	return nil
}

// Info describes an imported image.
type Info struct {
	Name       string    `json:"name"`
	ImportedAt time.Time `json:"imported_at"`
	Bytes      int64     `json:"size_bytes"` // regular files' contents
	Files      int       `json:"files"`      // entries of every kind
	Skipped    int       `json:"skipped"`    // device nodes and fifos (the sandbox makes its own /dev)
}

const infoFile = "image.json"

// Store is an image directory.
type Store struct{ Dir string }

// Root returns the root directory of the image called name.
func (s Store) Root(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(s.Dir, name, infoFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %q (import one with `soulbox template import %s FILE`)", ErrNotFound, name, name)
		}
		return "", fmt.Errorf("template %q: %w", name, err)
	}
	return filepath.Join(s.Dir, name, "rootfs"), nil
}

// Get returns what is known of the image called name.
func (s Store) Get(name string) (Info, error) {
	if _, err := s.Root(name); err != nil {
		return Info{}, err
	}
	return readInfo(filepath.Join(s.Dir, name))
}

func readInfo(dir string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, infoFile))
	if err != nil {
		return Info{}, err
	}
	var i Info
	if err := json.Unmarshal(b, &i); err != nil {
		return Info{}, fmt.Errorf("%s: %w", filepath.Join(dir, infoFile), err)
	}
	return i, nil
}

// List returns the imported images by name; a missing directory is an
// empty list.
func (s Store) List() ([]Info, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue // imports in progress, leftovers
		}
		i, err := readInfo(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// Remove deletes the image called name. Sandboxes running on it keep
// working: their read-only clones hold the trees.
func (s Store) Remove(name string) error {
	if _, err := s.Root(name); err != nil {
		return err
	}
	trash, err := os.MkdirTemp(s.Dir, ".remove-")
	if err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(s.Dir, name), filepath.Join(trash, name)); err != nil {
		os.Remove(trash)
		return err
	}
	return os.RemoveAll(trash)
}
