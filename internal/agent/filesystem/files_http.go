package filesystem

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FilesPath is where FilesHandler is served.
const FilesPath = "/files"

// FilesHandler returns the handler of the envd /files API: GET downloads a
// file, POST uploads files. The host daemon checks access tokens and
// signatures before it forwards a request; the agent ignores them.
func (s *Service) FilesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			s.download(w, r)
		case http.MethodPost:
			s.upload(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
	})
}

// httpUser is the user a /files request acts as: the username query
// parameter, else the Basic authorization user, else "user".
func (s *Service) httpUser(r *http.Request) (User, error) {
	if name := r.URL.Query().Get("username"); name != "" {
		return s.userNamed(name)
	}
	return s.userOf(r.Header)
}

// writeError writes the envd error body {"code": status, "message": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Encoding")
	w.Header().Del("Content-Disposition")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{status, msg})
}

func writeErr(w http.ResponseWriter, err error) {
	writeError(w, statusOf(err), err.Error())
}

// download streams a regular file. Anything else is refused before it is
// opened (a FIFO or device is never opened for reading the content of),
// and the descriptor is checked again after a non-blocking open, so a
// path swapped for a FIFO in between cannot block the agent either.
func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	u, err := s.httpUser(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	p, err := resolve(r.URL.Query().Get("path"), u.Home)
	if err != nil {
		writeErr(w, err)
		return
	}
	enc, ok := negotiate(r.Header.Get("Accept-Encoding"))
	if !ok {
		writeError(w, http.StatusNotAcceptable, "no acceptable encoding found, supported: [identity, gzip]")
		return
	}
	var f *os.File
	var st unix.Stat_t
	err = asUser(u, func() error {
		if err := unix.Stat(p, &st); err != nil {
			return &fs.PathError{Op: "stat", Path: p, Err: err}
		}
		if err := checkRegular(p, &st); err != nil {
			return err
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return &fs.PathError{Op: "stat", Path: p, Err: err}
		}
		if err := checkRegular(p, &st); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), p)
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}))
	h.Add("Vary", "Accept-Encoding")
	if enc != "gzip" {
		// ServeContent streams with Range and conditional requests.
		http.ServeContent(w, r, "", time.Unix(st.Mtim.Sec, st.Mtim.Nsec), f)
		return
	}
	h.Set("Content-Encoding", "gzip")
	h.Set("Last-Modified", time.Unix(st.Mtim.Sec, 0).UTC().Format(http.TimeFormat))
	if r.Method == http.MethodHead {
		return
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	buf := make([]byte, copyBuffer)
	if _, err := io.CopyBuffer(zw, onlyReader{f}, buf); err != nil {
		// Headers are sent: the client sees a truncated gzip stream.
		s.cfg.Logger.Warn("download", "path", p, "err", err)
		return
	}
	zw.Close()
}

func checkRegular(p string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFDIR:
		return fmt.Errorf("%w: path %s is a directory", errIsDir, p)
	default:
		return fmt.Errorf("%w: path %s is a %s, only regular files can be downloaded", errNotRegular, p, kindOf(st.Mode))
	}
}

func kindOf(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "named pipe"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "special file"
}

// onlyReader hides an *os.File's WriterTo/ReaderFrom so io.CopyBuffer
// uses the bounded buffer it is given.
type onlyReader struct{ io.Reader }

// negotiate picks the response encoding from Accept-Encoding: gzip when
// the client accepts it at least as much as identity, else identity; ok
// is false when the client accepts neither.
func negotiate(header string) (enc string, ok bool) {
	if strings.TrimSpace(header) == "" {
		return "identity", true
	}
	q := map[string]float64{}
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding == "" {
			continue
		}
		weight := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 && f <= 1 {
					weight = f
				}
			}
		}
		q[coding] = weight
	}
	weight := func(c string, dflt float64) float64 {
		if w, ok := q[c]; ok {
			return w
		}
		if w, ok := q["*"]; ok {
			return w
		}
		return dflt
	}
	gz := weight("gzip", 0)
	if _, ok := q["x-gzip"]; ok && gz == 0 {
		gz = q["x-gzip"]
	}
	id := weight("identity", 1) // identity is acceptable unless refused
	switch {
	case gz > 0 && gz >= id:
		return "gzip", true
	case id > 0:
		return "identity", true
	case gz > 0:
		return "gzip", true
	}
	return "", false
}
