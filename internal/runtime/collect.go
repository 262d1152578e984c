package runtime

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/soulbox-dev/soulbox/internal/nsinit"
)

// Collect asks for the regular files a run creates or modifies under a
// directory of the sandbox; they come back in Result.Files.
//
// Nothing on the host is read or written to collect them: the sandbox's
// init walks the directory inside the sandbox (never following a link) and
// streams the files to the runtime, which keeps them in memory within the
// caps below. Paths in the Result are tenant-chosen names: a caller that
// writes them to a host directory must treat them as hostile (see
// internal/artifact).
type Collect struct {
	// Dir is relative to the user's home (the working directory); "" is
	// the home itself.
	Dir      string
	MaxFiles int   // more files are dropped (FilesTruncated)
	MaxBytes int64 // total content kept; larger files are listed without content
}

// DefaultCollect is a reasonable cap for one run's files.
func DefaultCollect() Collect { return Collect{MaxFiles: 100, MaxBytes: 64 << 20} }

func (c *Collect) validate() error {
	if c.MaxFiles < 1 || c.MaxFiles > 100000 {
		return fmt.Errorf("%w: collect: max files %d is outside [1, 100000]", ErrInvalidSpec, c.MaxFiles)
	}
	if c.MaxBytes < 0 || c.MaxBytes > 1<<30 {
		return fmt.Errorf("%w: collect: max bytes %d is outside [0, 1G]", ErrInvalidSpec, c.MaxBytes)
	}
	if c.Dir != "" && !validRelPath(c.Dir) {
		return fmt.Errorf("%w: collect: directory %q must be a relative path inside the home directory", ErrInvalidSpec, c.Dir)
	}
	return nil
}

// validRelPath accepts clean relative "/"-separated paths without "..",
// NUL or empty components, of a sane length.
func validRelPath(p string) bool {
	if p == "" || len(p) > 4096 || !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	if path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == "" {
			return false
		}
	}
	return true
}

// errCollectStream marks a stream that broke the rules; what was read
// before it is kept.
var errCollectStream = errors.New("collected files: malformed stream")

// ParseFiles parses a stream of collected files (as the init sends them)
// with the caps of c; see readFiles.
func ParseFiles(r io.Reader, c Collect) ([]File, bool, error) { return readFiles(r, c) }

// readFiles parses the init's tar stream. The stream comes from inside the
// sandbox and is hostile: only regular-file entries with clean relative
// names are accepted, at most once each; counts, sizes and the total are
// capped; the reader never allocates more than the caps allow. It always
// drains r, so the writer is never blocked.
func readFiles(r io.Reader, c Collect) (files []File, truncated bool, err error) {
	defer io.Copy(io.Discard, r)
	// Header overhead: tar blocks and PAX records per file.
	lr := io.LimitReader(r, c.MaxBytes+int64(c.MaxFiles+2)*8192)
	tr := tar.NewReader(lr)
	seen := map[string]bool{}
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sortFiles(files), true, fmt.Errorf("%w: %v", errCollectStream, err)
		}
		if hdr.Typeflag != tar.TypeReg || !validRelPath(hdr.Name) || seen[hdr.Name] || hdr.Size < 0 {
			return sortFiles(files), true, fmt.Errorf("%w: entry %q", errCollectStream, hdr.Name)
		}
		if len(files) >= c.MaxFiles {
			return sortFiles(files), true, nil
		}
		seen[hdr.Name] = true
		f := File{Path: hdr.Name, Mode: uint32(hdr.Mode) & 0o777, Size: hdr.Size}
		if hdr.PAXRecords[nsinit.PAXOmitted] == "1" {
			n, perr := strconv.ParseInt(hdr.PAXRecords[nsinit.PAXSize], 10, 64)
			if perr != nil || n < 0 || hdr.Size != 0 {
				return sortFiles(files), true, fmt.Errorf("%w: entry %q", errCollectStream, hdr.Name)
			}
			f.Size, f.Omitted = n, true
			files = append(files, f)
			truncated = true
			continue
		}
		if total+hdr.Size > c.MaxBytes {
			return sortFiles(files), true, fmt.Errorf("%w: over the size cap", errCollectStream)
		}
		total += hdr.Size
		f.Data = make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, f.Data); err != nil {
			return sortFiles(files), true, fmt.Errorf("%w: %v", errCollectStream, err)
		}
		files = append(files, f)
	}
	return sortFiles(files), truncated, nil
}

func sortFiles(f []File) []File {
	sort.Slice(f, func(i, j int) bool { return f[i].Path < f[j].Path })
	return f
}
