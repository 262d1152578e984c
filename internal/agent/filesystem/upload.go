package filesystem

import (
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// copyBuffer is the size of the buffer a transfer streams through.
const copyBuffer = 64 << 10

// uploadTempPrefix starts the name of an upload's temporary file. The
// letter after it says whether the destination existed ("e") or not
// ("n"), which lets watches report the rename into place as envd reports
// an in-place write.
const uploadTempPrefix = ".soulbox-upload-"

func tempName(existed bool) string {
	var b [8]byte
	rand.Read(b[:])
	mark := "n"
	if existed {
		mark = "e"
	}
	return uploadTempPrefix + mark + "-" + hex.EncodeToString(b[:])
}

// uploadTemp reports whether base names an upload's temporary file and,
// if so, whether its destination existed.
func uploadTemp(base string) (existed, ok bool) {
	rest, ok := strings.CutPrefix(base, uploadTempPrefix)
	if !ok || len(rest) < 2 || rest[1] != '-' {
		return false, false
	}
	return rest[0] == 'e', rest[0] == 'e' || rest[0] == 'n'
}

func isUploadTemp(base string) bool {
	_, ok := uploadTemp(base)
	return ok
}

// writtenEntry is one element of the upload response.
type writtenEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Path string `json:"path"`
}

// upload writes the files of a multipart/form-data or
// application/octet-stream body (optionally gzip-encoded), streaming each
// to a temporary file next to its destination and renaming it into place,
// so a failed upload leaves no partial file. File content beyond
// Config.UploadLimit per request fails the upload with 413; files already
// completed by then stay.
func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	u, err := s.httpUser(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	dest := r.URL.Query().Get("path")
	// The raw body may exceed the content a little (multipart framing,
	// gzip of incompressible data); anything beyond that is refused too.
	limit := s.cfg.UploadLimit
	fail := func(err error) {
		if errors.Is(err, errTooLarge) {
			err = fmt.Errorf("%w of %d bytes", errTooLarge, limit)
		}
		writeErr(w, err)
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit+limit/16+1<<20)
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			fail(readError(err))
			return
		}
		body = zr
	default:
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Encoding %q, supported: identity, gzip", ce))
		return
	}
	left := limit
	var written []writtenEntry
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "application/octet-stream":
		if dest == "" {
			writeError(w, http.StatusBadRequest, "the path query parameter is required for application/octet-stream uploads")
			return
		}
		e, err := s.writeFile(u, dest, body, &left)
		if err != nil {
			fail(err)
			return
		}
		written = append(written, e)
	case err == nil && mt == "multipart/form-data" && params["boundary"] != "":
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fail(readError(err))
				return
			}
			if part.FormName() != "file" {
				continue // NextPart skips what is left of it
			}
			name := dest
			if name == "" {
				name = partFileName(part)
			}
			if name == "" {
				writeError(w, http.StatusBadRequest, "a file part has no file name and the path query parameter is not set")
				return
			}
			for _, e := range written {
				if p, _ := resolve(name, u.Home); p == e.Path {
					writeError(w, http.StatusBadRequest, fmt.Sprintf("cannot upload several files to %s in one request", p))
					return
				}
			}
			e, err := s.writeFile(u, name, part, &left)
			if err != nil {
				fail(err)
				return
			}
			written = append(written, e)
		}
		if len(written) == 0 {
			writeError(w, http.StatusBadRequest, `the multipart body has no "file" part`)
			return
		}
	default:
		writeError(w, http.StatusBadRequest, "the body must be multipart/form-data (with a boundary) or application/octet-stream")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(written)
}

// partFileName is the file name of a part as sent: unlike
// Part.FileName it keeps directories, which the E2B SDKs send there.
func partFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// readError classifies a failure to read the request body.
func readError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return errTooLarge
	}
	return fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
}

// writeFile streams src to name (resolved for u) through a temporary file
// and renames it into place. A destination that is a symbolic link is
// written where the link leads, and an existing file keeps its mode (not
// its inode: hard links to it keep the old content). left is the content
// budget of the request.
func (s *Service) writeFile(u User, name string, src io.Reader, left *int64) (writtenEntry, error) {
	dst, err := resolve(name, u.Home)
	if err != nil {
		return writtenEntry{}, err
	}
	final := dst
	var f *os.File
	var tmp string
	err = asUser(u, func() error {
		if t, err := filepath.EvalSymlinks(dst); err == nil {
			final = t
		}
		mode := uint32(0o644)
		var st unix.Stat_t
		err := unix.Stat(final, &st)
		existed := err == nil
		switch {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return fmt.Errorf("%w: path %s is a directory", errIsDir, dst)
		case err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG:
			return fmt.Errorf("%w: path %s is a %s", errNotRegular, dst, kindOf(st.Mode))
		case err == nil:
			mode = st.Mode & 0o7777 &^ (unix.S_ISUID | unix.S_ISGID)
		case err != unix.ENOENT:
			return &fs.PathError{Op: "stat", Path: dst, Err: err}
		}
		if err := os.MkdirAll(path.Dir(final), 0o755); err != nil {
			return err
		}
		tmp = path.Join(path.Dir(final), tempName(existed))
		fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err != nil {
			return &fs.PathError{Op: "create", Path: dst, Err: err}
		}
		f = os.NewFile(uintptr(fd), tmp)
		// The umask may have cut the mode an existing file had.
		return f.Chmod(fs.FileMode(mode & 0o777))
	})
	if err != nil {
		if f != nil {
			f.Close()
			asUser(u, func() error { return unix.Unlink(tmp) })
		}
		return writtenEntry{}, err
	}
	err = copyLimited(f, src, left)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = asUser(u, func() error { return os.Rename(tmp, final) })
	}
	if err != nil {
		asUser(u, func() error { return unix.Unlink(tmp) })
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == tmp {
			pe.Path = dst // name the file the client asked for
		}
		return writtenEntry{}, err
	}
	return writtenEntry{Name: path.Base(dst), Type: "file", Path: dst}, nil
}

// copyLimited copies src to dst through a bounded buffer, failing with
// errTooLarge once more than *left bytes arrive. Read failures are the
// client's (400, or 413 past the raw body limit); write failures the
// file system's.
func copyLimited(dst *os.File, src io.Reader, left *int64) error {
	buf := make([]byte, copyBuffer)
	for {
		n, rerr := src.Read(buf)
		if int64(n) > *left {
			return errTooLarge
		}
		*left -= int64(n)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return readError(rerr)
		}
	}
}
