package image

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Import extracts the tar stream r as the image called name. The stream
// is extracted into a temporary directory and renamed into place, so a
// failed import leaves nothing and a sandbox never sees half an image.
// With replace, an existing image of that name is replaced; without, it is
// an ErrExists error.
//
// Every entry stays inside the image: names are cleaned of leading "/"
// and "..", and extraction goes through an os.Root, which refuses a path
// that would leave the directory through a symbolic link. Owners, modes
// and modification times are kept (files belong to the host's root, which
// no sandbox maps, so they are read-only inside); device nodes and fifos
// are skipped.
func (s Store) Import(name string, r io.Reader, replace bool) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	if !replace {
		if _, err := s.Root(name); err == nil {
			return Info{}, fmt.Errorf("%w: %q (pass --replace to replace it)", ErrExists, name)
		}
	}
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return Info{}, fmt.Errorf("create image directory: %w", err)
	}
	tmp, err := os.MkdirTemp(s.dir(), ".import-")
	if err != nil {
		return Info{}, fmt.Errorf("create import directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	rootDir := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		return Info{}, err
	}
	info := Info{Name: name}
	if err := extract(rootDir, r, &info); err != nil {
		return Info{}, err
	}
	if _, err := os.Stat(filepath.Join(rootDir, "usr")); err != nil {
		return Info{}, fmt.Errorf("%w: the archive has no /usr: it is not a root file system", ErrInvalid)
	}
	info.ImportedAt = time.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return Info{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, infoFile), append(b, '\n'), 0o644); err != nil {
		return Info{}, err
	}
	final := filepath.Join(s.dir(), name)
	if replace {
		if _, err := os.Stat(final); err == nil {
			// The old one goes to the trash: sandboxes may hold it.
			if err := s.discard(final, name); err != nil {
				return Info{}, fmt.Errorf("replace %q: %w", name, err)
			}
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return Info{}, fmt.Errorf("%w: %q (imported meanwhile)", ErrExists, name)
		}
		return Info{}, fmt.Errorf("install %q: %w", name, err)
	}
	s.EmptyTrash()
	return info, nil
}

// extract writes the tar stream r under dir.
func extract(dir string, r io.Reader, info *Info) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type dirTimes struct {
		name  string
		mtime time.Time
	}
	var dirs []dirTimes
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading the archive: %v", ErrInvalid, err)
		}
		name, ok := cleanName(h.Name)
		if !ok {
			continue // the root itself
		}
		info.Files++
		switch h.Typeflag {
		case tar.TypeDir:
			err = makeDir(root, name, h)
			dirs = append(dirs, dirTimes{name, h.ModTime})
		case tar.TypeReg:
			var n int64
			n, err = writeFile(root, name, h, tr)
			info.Bytes += n
		case tar.TypeSymlink:
			err = replaceWith(root, name, func() error { return root.Symlink(h.Linkname, name) })
			if err == nil {
				err = root.Lchown(name, h.Uid, h.Gid)
			}
		case tar.TypeLink:
			target, ok := cleanName(h.Linkname)
			if !ok {
				return fmt.Errorf("%w: %s: hard link to the root", ErrInvalid, h.Name)
			}
			err = replaceWith(root, name, func() error { return root.Link(target, name) })
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			info.Skipped++
			info.Files--
		default:
			return fmt.Errorf("%w: %s: unsupported entry type %q", ErrInvalid, h.Name, h.Typeflag)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalid, h.Name, err)
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

// cleanName makes a tar entry name relative to the image root; ok is
// false for the root itself.
func cleanName(n string) (string, bool) {
	n = path.Clean("/" + n) // drops "..", ".", leading "/"
	n = strings.TrimPrefix(n, "/")
	return n, n != ""
}

// ensureParent creates the missing parents of name (archives need not list
// every directory).
func ensureParent(root *os.Root, name string) error {
	if d := path.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

// replaceWith removes whatever non-directory is at name (a later tar
// entry replaces an earlier one) and calls create.
func replaceWith(root *os.Root, name string, create func() error) error {
	if err := ensureParent(root, name); err != nil {
		return err
	}
	if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
		if err := root.Remove(name); err != nil {
			return err
		}
	}
	return create()
}

func makeDir(root *os.Root, name string, h *tar.Header) error {
	err := replaceWith(root, name, func() error {
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := root.Lchown(name, h.Uid, h.Gid); err != nil {
		return err
	}
	return root.Chmod(name, h.FileInfo().Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid))
}

// writeFile writes a regular file: owner first, then the mode (a chown
// clears the set-id bits), then the times.
func writeFile(root *os.Root, name string, h *tar.Header, r io.Reader) (int64, error) {
	var f *os.File
	err := replaceWith(root, name, func() error {
		var err error
		f, err = root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(f, r)
	if err != nil {
		return n, err
	}
	if err := f.Chown(h.Uid, h.Gid); err != nil {
		return n, err
	}
	if err := f.Chmod(h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid)); err != nil {
		return n, err
	}
	ts := unix.NsecToTimespec(h.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(int(f.Fd()), "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
		return n, err
	}
	return n, f.Close()
}
