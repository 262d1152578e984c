// Package artifact turns the files a run produced into what callers
// return: a description with a media type, content inline when small, and
// a safe way to write them into a host directory.
//
// Artifact paths are chosen by tenant code. Writing them on the host is
// the classic hole of judge systems (Judge0's CVE-2024-28185 and
// CVE-2024-28189 followed symbolic links a submission planted), so Save
// resolves every path inside the target directory with os.Root (no
// symbolic link, "..", or absolute path leads out of it), creates files
// with O_EXCL|O_NOFOLLOW under a temporary name and renames them into
// place (a rename replaces a directory entry, never a link's target),
// writes regular files only, never with set-id or group/other-write bits,
// and caps each file's size.
package artifact

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/lang"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Artifact describes one file of a run, as the JSON result shows it.
type Artifact struct {
	Path     string `json:"path"`
	MimeType string `json:"mime_type"`
	Size     int64  `json:"size"`
	// ContentBase64 holds the content when it is at most the inline
	// threshold; otherwise it is empty and, if a directory was given,
	// SavedTo names the host file.
	ContentBase64 string `json:"content_base64,omitempty"`
	SavedTo       string `json:"saved_to,omitempty"`
	// Omitted is set when the content was over the collection cap and
	// never left the sandbox.
	Omitted bool `json:"omitted,omitempty"`
}

// Describe lists files with their media types, inlining contents of at
// most inlineMax bytes.
func Describe(files []sbrt.File, inlineMax int64) []Artifact {
	out := make([]Artifact, 0, len(files))
	for _, f := range files {
		a := Artifact{Path: f.Path, MimeType: lang.MimeType(f.Path, f.Data), Size: f.Size, Omitted: f.Omitted}
		if !f.Omitted && int64(len(f.Data)) <= inlineMax {
			a.ContentBase64 = base64.StdEncoding.EncodeToString(f.Data)
		}
		out = append(out, a)
	}
	return out
}

// ErrUnsafePath is returned for a path that cannot be written safely.
var ErrUnsafePath = errors.New("unsafe artifact path")

// Save writes every file with content into dir (created if missing) and
// sets SavedTo on the matching artifacts. A file that cannot be written
// safely is skipped with an error; the others are still written.
func Save(dir string, files []sbrt.File, arts []Artifact, maxFile int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	for i, f := range files {
		if f.Omitted {
			continue
		}
		if err := saveOne(root, f, maxFile); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", f.Path, err))
			continue
		}
		if i < len(arts) && arts[i].Path == f.Path {
			arts[i].SavedTo = path.Join(dir, f.Path)
		}
	}
	return errors.Join(errs...)
}

func saveOne(root *os.Root, f sbrt.File, maxFile int64) error {
	if !safeRel(f.Path) {
		return ErrUnsafePath
	}
	if int64(len(f.Data)) > maxFile {
		return fmt.Errorf("larger than %d bytes", maxFile)
	}
	if d := path.Dir(f.Path); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tmp := path.Join(path.Dir(f.Path), ".soulbox-"+path.Base(f.Path)+".tmp")
	mode := os.FileMode(f.Mode) & 0o755
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode|0o600)
	if err != nil {
		return err
	}
	_, werr := out.Write(f.Data)
	cerr := out.Close()
	if err := errors.Join(werr, cerr); err != nil {
		root.Remove(tmp)
		return err
	}
	if err := root.Rename(tmp, f.Path); err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}

func safeRel(p string) bool {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." {
			return false
		}
	}
	return true
}
