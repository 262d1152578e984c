// Package filesystem is the agent's file service: the envd-compatible
// filesystem.Filesystem Connect service (api/proto/filesystem) — Stat,
// ListDir, MakeDir, Move, Remove, WatchDir and the polling watchers — and
// the HTTP /files API (download and upload, spec/envd/envd.yaml).
//
// Every request acts as a user of the sandbox (the Basic authorization
// user name for Connect, the username query parameter for /files, "user"
// by default): relative paths resolve against that user's home, and every
// system call that resolves a path runs on a thread whose file system uid
// and gid are the user's (see asUser), so files are created owned by the
// user and the kernel applies its permission checks. The agent itself
// holds no CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER or
// CAP_CHOWN, so it cannot read or write more than the user could.
//
// Paths are not confined to the home directory and symbolic links are
// followed: the agent runs inside the sandbox's mount namespace after
// pivot_root, so "/" is the sandbox's root and no path or link can lead
// to the host. Nothing opens a file that is not a regular file or a
// directory: FIFOs, sockets and devices are described (Stat, ListDir)
// from lstat alone and refused by downloads, so none can block the agent.
//
// A Service is safe for concurrent use; Close ends its watchers.
package filesystem

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
)

// DefaultUser is the user a request acts as when it names none.
const DefaultUser = "user"

// Defaults of Config's limits.
const (
	DefaultUploadLimit    = 1 << 30 // bytes per upload request
	DefaultMaxListEntries = 100_000 // entries in one ListDir response
	DefaultMaxWatches     = 8192    // directories one recursive watch follows
	DefaultMaxWatchers    = 256     // polling watchers alive at once
	DefaultWatcherBuffer  = 10_000  // events a polling watcher keeps between polls
	MaxListDepth          = 32      // deeper ListDir requests are cut to this depth
)

// Config configures a Service.
type Config struct {
	// User maps a user name to the ids and home directory (absolute) a
	// request acts as. It is required: without it every request fails.
	User           func(name string) (User, error)
	KeepAlive      time.Duration // interval of keepalive events on WatchDir streams
	UploadLimit    int64         // bytes of file content one upload request may write
	MaxListEntries int           // entries one ListDir may return
	MaxWatches     int           // directories one recursive watch may follow
	MaxWatchers    int           // polling watchers alive at once
	WatcherBuffer  int           // events kept per polling watcher; older ones are dropped
	Logger         *slog.Logger
}

// Service implements filesystemconnect.FilesystemHandler and the /files
// HTTP API.
type Service struct {
	cfg      Config
	mu       sync.Mutex
	watchers map[string]*poller
	closed   bool
}

var _ filesystemconnect.FilesystemHandler = (*Service)(nil)

// New returns a Service; zero fields of cfg get defaults.
func New(cfg Config) *Service {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 50 * time.Second
	}
	if cfg.UploadLimit <= 0 {
		cfg.UploadLimit = DefaultUploadLimit
	}
	if cfg.MaxListEntries <= 0 {
		cfg.MaxListEntries = DefaultMaxListEntries
	}
	if cfg.MaxWatches <= 0 {
		cfg.MaxWatches = DefaultMaxWatches
	}
	if cfg.MaxWatchers <= 0 {
		cfg.MaxWatchers = DefaultMaxWatchers
	}
	if cfg.WatcherBuffer <= 0 {
		cfg.WatcherBuffer = DefaultWatcherBuffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, watchers: map[string]*poller{}}
}

// Handler returns the HTTP path prefix and handler serving the Connect
// service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return filesystemconnect.NewFilesystemHandler(s, opts...)
}

// Close removes every polling watcher. Streams end with their requests.
func (s *Service) Close() error {
	s.mu.Lock()
	ws := s.watchers
	s.watchers = map[string]*poller{}
	s.closed = true
	s.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
	return nil
}

// userNamed maps a user name to a User.
func (s *Service) userNamed(name string) (User, error) {
	if s.cfg.User == nil {
		return User{}, fmt.Errorf("%w %q: the agent has no user mapping", errUnknownUser, name)
	}
	u, err := s.cfg.User(name)
	if err != nil {
		return User{}, fmt.Errorf("%w %q: %v", errUnknownUser, name, err)
	}
	if !path.IsAbs(u.Home) {
		return User{}, fmt.Errorf("%w %q: home directory %q is not absolute", errUnknownUser, name, u.Home)
	}
	u.Home = path.Clean(u.Home)
	return u, nil
}

// userOf returns the user a Connect request acts as: the name the E2B
// SDKs send as "Basic base64(user:)", "user" without one.
func (s *Service) userOf(h http.Header) (User, error) {
	name := DefaultUser
	if v := h.Get("Authorization"); v != "" {
		enc, ok := strings.CutPrefix(v, "Basic ")
		if !ok {
			return User{}, fmt.Errorf("%w: authorization must be Basic with a user name", errBadRequest)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return User{}, fmt.Errorf("%w: authorization is not valid base64", errBadRequest)
		}
		if n, _, _ := strings.Cut(string(raw), ":"); n != "" {
			name = n
		}
	}
	return s.userNamed(name)
}

// target returns the user of a Connect request and a path of it resolved.
func (s *Service) target(h http.Header, p string) (User, string, error) {
	u, err := s.userOf(h)
	if err != nil {
		return User{}, "", err
	}
	abs, err := resolve(p, u.Home)
	return u, abs, err
}

// Stat describes one entry without following a final symbolic link.
func (s *Service) Stat(_ context.Context, req *connect.Request[pb.StatRequest]) (*connect.Response[pb.StatResponse], error) {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, connectError(err)
	}
	var e *pb.EntryInfo
	err = asUser(u, func() (err error) {
		e, err = entryOf(p, newNames())
		return err
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&pb.StatResponse{Entry: e}), nil
}

// MakeDir creates a directory and its missing parents; an existing one is
// already_exists.
func (s *Service) MakeDir(_ context.Context, req *connect.Request[pb.MakeDirRequest]) (*connect.Response[pb.MakeDirResponse], error) {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, connectError(err)
	}
	var e *pb.EntryInfo
	err = asUser(u, func() error {
		if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
			return err
		}
		if err := unix.Mkdir(p, 0o755); err != nil {
			if err == unix.EEXIST {
				if st, serr := os.Stat(p); serr == nil && !st.IsDir() {
					return fmt.Errorf("%w: %s exists and is not a directory", errNotDir, p)
				}
				return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("directory %s already exists", p))
			}
			return &fs.PathError{Op: "mkdir", Path: p, Err: err}
		}
		e, err = entryOf(p, newNames())
		return err
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&pb.MakeDirResponse{Entry: e}), nil
}

// Move renames an entry, creating the destination's missing parents.
func (s *Service) Move(_ context.Context, req *connect.Request[pb.MoveRequest]) (*connect.Response[pb.MoveResponse], error) {
	u, src, err := s.target(req.Header(), req.Msg.GetSource())
	if err != nil {
		return nil, connectError(err)
	}
	dst, err := resolve(req.Msg.GetDestination(), u.Home)
	if err != nil {
		return nil, connectError(err)
	}
	var e *pb.EntryInfo
	err = asUser(u, func() error {
		if _, err := os.Lstat(src); err != nil {
			return err
		}
		if err := os.MkdirAll(path.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		e, err = entryOf(dst, newNames())
		return err
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&pb.MoveResponse{Entry: e}), nil
}

// Remove removes an entry and, for a directory, everything in it. A path
// that does not exist is not an error (as in envd); "/" is refused.
func (s *Service) Remove(_ context.Context, req *connect.Request[pb.RemoveRequest]) (*connect.Response[pb.RemoveResponse], error) {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, connectError(err)
	}
	if p == "/" {
		return nil, connectError(errRemoveRoot)
	}
	if err := asUser(u, func() error { return os.RemoveAll(p) }); err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&pb.RemoveResponse{}), nil
}

// ListDir lists a directory (following it if it is a symbolic link) to
// the requested depth (1, the default, is its entries only), depth first
// in name order. Subdirectories the user cannot read are listed but not
// entered; symbolic links are never entered.
func (s *Service) ListDir(_ context.Context, req *connect.Request[pb.ListDirRequest]) (*connect.Response[pb.ListDirResponse], error) {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, connectError(err)
	}
	depth := int(min(req.Msg.GetDepth(), MaxListDepth))
	if depth == 0 {
		depth = 1
	}
	res := &pb.ListDirResponse{}
	err = asUser(u, func() error {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			if err == unix.ENOTDIR {
				return fmt.Errorf("%w: %s", errNotDir, p)
			}
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		return s.walk(fd, p, depth, newNames(), &res.Entries)
	})
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(res), nil
}

// walk appends the entries of the directory open as dirfd (path dir) and,
// while depth allows, of its subdirectories; it closes dirfd.
func (s *Service) walk(dirfd int, dir string, depth int, n *names, out *[]*pb.EntryInfo) error {
	f := os.NewFile(uintptr(dirfd), dir)
	defer f.Close()
	var entries []string
	for {
		batch, err := f.Readdirnames(1024)
		entries = append(entries, batch...)
		if len(*out)+len(entries) > s.cfg.MaxListEntries {
			return fmt.Errorf("%w: %s holds more than %d entries at depth %d", errTooMany, dir, s.cfg.MaxListEntries, depth)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &fs.PathError{Op: "readdir", Path: dir, Err: err}
		}
	}
	sort.Strings(entries)
	for _, name := range entries {
		p := path.Join(dir, name)
		e, err := entryAt(dirfd, name, p, n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since it was read
		}
		if err != nil {
			return err
		}
		*out = append(*out, e)
		if len(*out) > s.cfg.MaxListEntries {
			return fmt.Errorf("%w: more than %d entries", errTooMany, s.cfg.MaxListEntries)
		}
		if depth <= 1 || e.GetType() != pb.FileType_FILE_TYPE_DIRECTORY {
			continue
		}
		cfd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // unreadable, or replaced since: listed, not entered
		}
		if err := s.walk(cfd, p, depth-1, n, out); err != nil {
			return err
		}
	}
	return nil
}
