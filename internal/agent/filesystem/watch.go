package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

// watch follows one directory, and with recursive its subdirectories
// (including those created later), for one WatchDir stream or polling
// watcher. Its events arrive on out, which is closed when the watch is.
//
// inotify watches are added on a thread acting as the user (asUser), so a
// user can watch only what it may read; fsnotify's own recursion is not
// used because it would add watches from its reader goroutine, as the
// agent. Uploads' temporary files are hidden, and an upload's rename into
// place is reported as envd reports an in-place write (see translate).
type watch struct {
	u         User
	root      string
	recursive bool
	entries   bool
	max       int
	log       *slog.Logger

	fw      *fsnotify.Watcher
	out     chan *pb.FilesystemEvent
	done    chan struct{}
	once    sync.Once
	dirs    int          // directories watched (never decremented: a bound, not a count)
	pending *pendingMove // an upload's temporary file just renamed away
}

type pendingMove struct {
	dir     string
	existed bool
}

// startWatch sets the watch up as the user and starts delivering events.
func (s *Service) startWatch(u User, root string, recursive, entries bool) (*watch, error) {
	fw, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return nil, err
	}
	w := &watch{
		u: u, root: root, recursive: recursive, entries: entries, max: s.cfg.MaxWatches,
		log: s.cfg.Logger, fw: fw,
		out:  make(chan *pb.FilesystemEvent, 64),
		done: make(chan struct{}),
	}
	err = asUser(u, func() error {
		st, err := os.Stat(root)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%w: %s", errNotDir, root)
		}
		return w.add(root, nil)
	})
	if err != nil {
		fw.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// add watches dir and, for a recursive watch, the directories below it.
// It runs as the user. With created non-nil, it reports every entry found
// below dir as created (entries made before their directory was watched).
func (w *watch) add(dir string, created func(p string)) error {
	if w.dirs >= w.max {
		return fmt.Errorf("%w: more than %d directories to watch", errTooMany, w.max)
	}
	if err := w.fw.Add(dir); err != nil {
		return &fs.PathError{Op: "watch", Path: dir, Err: err}
	}
	w.dirs++
	if !w.recursive {
		return nil
	}
	// A directory replaced or unreadable since has nothing below to watch.
	ents := readDirQuiet(dir)
	for _, e := range ents {
		p := path.Join(dir, e.Name())
		if created != nil && !isUploadTemp(e.Name()) {
			created(p)
		}
		if e.IsDir() {
			if err := w.add(p, created); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *watch) close() {
	w.once.Do(func() {
		close(w.done)
		w.fw.Close()
	})
}

func (w *watch) run() {
	defer close(w.out)
	for {
		select {
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			for _, e := range w.translate(ev) {
				select {
				case w.out <- e:
				case <-w.done:
					return
				}
			}
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			// The kernel's queue overflowed (events were lost) or a
			// watch failed; the stream goes on with what remains.
			w.log.Warn("watch", "path", w.root, "err", err)
		case <-w.done:
			return
		}
	}
}

// translate turns one fsnotify event into the envd events it stands for.
func (w *watch) translate(ev fsnotify.Event) []*pb.FilesystemEvent {
	name := strings.TrimPrefix(ev.Name, w.root+"/")
	if w.root == "/" {
		name = strings.TrimPrefix(ev.Name, "/")
	}
	if ev.Name == w.root || name == ev.Name {
		return nil // the watched directory itself
	}
	dir, base := path.Split(ev.Name)
	pending := w.pending
	w.pending = nil
	if existed, ok := uploadTemp(base); ok {
		// An upload renames its temporary file into place: inotify
		// reports a move from the temporary name, then a move to the
		// destination (which fsnotify calls Create).
		if ev.Has(fsnotify.Rename) {
			w.pending = &pendingMove{dir: dir, existed: existed}
		}
		return nil
	}
	var types []pb.EventType
	if pending != nil && pending.dir == dir && ev.Op == fsnotify.Create {
		if !pending.existed {
			types = append(types, pb.EventType_EVENT_TYPE_CREATE)
		}
		types = append(types, pb.EventType_EVENT_TYPE_WRITE)
	} else {
		for _, m := range []struct {
			op fsnotify.Op
			t  pb.EventType
		}{
			{fsnotify.Create, pb.EventType_EVENT_TYPE_CREATE},
			{fsnotify.Write, pb.EventType_EVENT_TYPE_WRITE},
			{fsnotify.Remove, pb.EventType_EVENT_TYPE_REMOVE},
			{fsnotify.Rename, pb.EventType_EVENT_TYPE_RENAME},
			{fsnotify.Chmod, pb.EventType_EVENT_TYPE_CHMOD},
		} {
			if ev.Has(m.op) {
				types = append(types, m.t)
			}
		}
	}
	var out []*pb.FilesystemEvent
	var entry *pb.EntryInfo
	var found []string
	if w.entries || (w.recursive && ev.Has(fsnotify.Create)) {
		err := asUser(w.u, func() error {
			n := newNames()
			e, err := entryOf(ev.Name, n)
			if err != nil {
				return err
			}
			if w.entries {
				entry = e
			}
			if w.recursive && ev.Has(fsnotify.Create) && e.GetType() == pb.FileType_FILE_TYPE_DIRECTORY {
				return w.add(ev.Name, func(p string) { found = append(found, p) })
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("watch", "path", ev.Name, "err", err)
		}
	}
	for _, t := range types {
		fe := &pb.FilesystemEvent{Name: name, Type: t}
		if t != pb.EventType_EVENT_TYPE_REMOVE && t != pb.EventType_EVENT_TYPE_RENAME {
			fe.Entry = entry
		}
		out = append(out, fe)
	}
	for _, p := range found {
		fe := &pb.FilesystemEvent{Name: strings.TrimPrefix(p, w.root+"/"), Type: pb.EventType_EVENT_TYPE_CREATE}
		if w.root == "/" {
			fe.Name = strings.TrimPrefix(p, "/")
		}
		if w.entries {
			_ = asUser(w.u, func() (err error) { fe.Entry, err = entryOf(p, newNames()); return err })
		}
		out = append(out, fe)
	}
	return out
}

// keepAliveFor is the keepalive interval a WatchDir client asks for in
// the E2B SDKs' Keepalive-Ping-Interval header (whole seconds, at least
// one), never longer than dflt; else dflt.
func keepAliveFor(h http.Header, dflt time.Duration) time.Duration {
	n, err := strconv.Atoi(h.Get("Keepalive-Ping-Interval"))
	if err != nil || n < 1 {
		return dflt
	}
	return min(time.Duration(n)*time.Second, dflt)
}

// WatchDir streams a start event, then the changes under a directory,
// with keepalive events while idle, until the client goes away.
func (s *Service) WatchDir(ctx context.Context, req *connect.Request[pb.WatchDirRequest], stream *connect.ServerStream[pb.WatchDirResponse]) error {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return connectError(err)
	}
	w, err := s.startWatch(u, p, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry())
	if err != nil {
		return connectError(err)
	}
	defer w.close()
	if err := stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Start{Start: &pb.WatchDirResponse_StartEvent{}}}); err != nil {
		return err
	}
	keepalive := time.NewTicker(keepAliveFor(req.Header(), s.cfg.KeepAlive))
	defer keepalive.Stop()
	for {
		select {
		case ev, ok := <-w.out:
			if !ok {
				return connect.NewError(connect.CodeInternal, errors.New("the watch ended"))
			}
			if err := stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Filesystem{Filesystem: ev}}); err != nil {
				return err
			}
		case <-keepalive.C:
			if err := stream.Send(&pb.WatchDirResponse{Event: &pb.WatchDirResponse_Keepalive{Keepalive: &pb.WatchDirResponse_KeepAlive{}}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readDirQuiet lists dir without following a link to it, or returns nil.
func readDirQuiet(dir string) []fs.DirEntry {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	ents, _ := f.ReadDir(-1)
	return ents
}
