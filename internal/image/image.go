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
	"strconv"
	"time"

	"golang.org/x/sys/unix"
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

// Store is an image directory; the zero Store is this host's, Dir().
type Store struct{ Dir string }

func (s Store) dir() string {
	if s.Dir == "" {
		return Dir()
	}
	return s.Dir
}

// Root returns the root directory of the image called name.
func (s Store) Root(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(s.dir(), name, infoFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w: %q (import one with `soulbox template import %s FILE`)", ErrNotFound, name, name)
		}
		return "", fmt.Errorf("template %q: %w", name, err)
	}
	return filepath.Join(s.dir(), name, "rootfs"), nil
}

// Get returns what is known of the image called name.
func (s Store) Get(name string) (Info, error) {
	if _, err := s.Root(name); err != nil {
		return Info{}, err
	}
	return readInfo(filepath.Join(s.dir(), name))
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
	entries, err := os.ReadDir(s.dir())
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
		i, err := readInfo(filepath.Join(s.dir(), e.Name()))
		if err != nil {
			continue
		}
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// Hold opens the image called name for a sandbox: the returned directory
// is locked shared (flock) for as long as any copy of the descriptor is
// open — the runtime passes one to the sandbox's init, which keeps it
// for the sandbox's life. RootOf(dir) is the image's root, wherever the
// directory is renamed to meanwhile. Remove and Import --replace move a
// held image aside and delete it only once nobody holds it: a sandbox's
// /usr is a clone of the image's own directory, not a copy, so deleting
// its files would delete them under running sandboxes.
func (s Store) Hold(name string) (*os.File, error) {
	if _, err := s.Root(name); err != nil {
		return nil, err
	}
	dir, err := openDir(filepath.Join(s.dir(), name))
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", name, err)
	}
	if err := flock(dir, unix.LOCK_SH); err != nil {
		dir.Close()
		return nil, fmt.Errorf("template %q: lock: %w", name, err)
	}
	// Removed between the open and the lock: it is in the trash now.
	target, err := os.Readlink(fdPath(dir))
	if err != nil || filepath.Base(target) != name {
		dir.Close()
		return nil, fmt.Errorf("%w: %q (removed meanwhile)", ErrNotFound, name)
	}
	return dir, nil
}

// RootOf is the root file system of an image held through dir (see
// Hold): a path through the descriptor, valid in this process while dir
// is open, wherever the image is renamed to.
func RootOf(dir *os.File) string { return fdPath(dir) + "/rootfs" }

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// openDir opens an image directory for its lock (never through a link).
func openDir(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

const trashDir = ".trash"

// Remove removes the image called name: it can no longer be used, and
// its files are deleted as soon as no sandbox holds it (see Hold).
func (s Store) Remove(name string) error {
	if _, err := s.Root(name); err != nil {
		return err
	}
	if err := s.discard(filepath.Join(s.dir(), name), name); err != nil {
		return err
	}
	s.EmptyTrash()
	return nil
}

// discard moves dir into the trash.
func (s Store) discard(dir, name string) error {
	trash := filepath.Join(s.dir(), trashDir)
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	return os.Rename(dir, filepath.Join(trash, name+"-"+strconv.FormatInt(time.Now().UnixNano(), 10)))
}

// EmptyTrash deletes the removed or replaced images no sandbox holds any
// more (Import and Remove call it; so does `soulbox template list`).
func (s Store) EmptyTrash() {
	trash := filepath.Join(s.dir(), trashDir)
	entries, err := os.ReadDir(trash)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(trash, e.Name())
		d, err := openDir(p)
		if err != nil {
			continue
		}
		if flock(d, unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(p)
		}
		d.Close()
	}
	os.Remove(trash) // once empty
}
