package soulboxtest

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	fspb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

// sandbox is one fake sandbox: metadata, a directory for its files and
// its toy processes.
type sandbox struct {
	f     *FakeServer
	id    string
	token string
	dir   string
	root  *os.Root

	mu        sync.Mutex
	template  string
	metadata  map[string]string
	env       map[string]string
	limits    limitsJSON
	started   time.Time
	end       time.Time
	paused    bool
	autoPause bool
	procs     map[uint32]*proc
	nextPID   uint32
	watchers  map[*watcher]bool
}

func newSandbox(f *FakeServer, id, dir string) (*sandbox, error) {
	for _, d := range []string{"home/user", "root", "tmp"} {
		if err := os.MkdirAll(dir+"/"+d, 0o755); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &sandbox{
		f: f, id: id, token: randomHex(16), dir: dir, root: root,
		procs: map[uint32]*proc{}, nextPID: 100, watchers: map[*watcher]bool{},
	}, nil
}

func (s *sandbox) isPaused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

func home(user string) string {
	if user == "root" {
		return "/root"
	}
	if user == "" {
		user = "user"
	}
	return "/home/" + user
}

// resolve turns a sandbox path (relative ones from the user's home) into
// a name for s.root, which keeps every access inside the sandbox's
// directory.
func (s *sandbox) resolve(user, p string) (string, error) {
	if p == "" {
		return "", errors.New("path is required")
	}
	if !path.IsAbs(p) {
		p = path.Join(home(user), p)
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name == "" {
		name = "."
	}
	return name, nil
}

func (s *sandbox) stopAll() {
	s.mu.Lock()
	procs := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		p.signal(sigKill)
	}
}

// --- watchers ------------------------------------------------------------

type watcher struct {
	dir       string // absolute, cleaned
	recursive bool
	events    chan *fspb.FilesystemEvent
}

const (
	eventCreate = fspb.EventType_EVENT_TYPE_CREATE
	eventWrite  = fspb.EventType_EVENT_TYPE_WRITE
	eventRemove = fspb.EventType_EVENT_TYPE_REMOVE
	eventRename = fspb.EventType_EVENT_TYPE_RENAME
)

func (s *sandbox) addWatcher(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchers[w] = true
}

func (s *sandbox) removeWatcher(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers, w)
}

// notify tells the watchers of a change made through the fake's own API
// (the fake does not watch its directory).
func (s *sandbox) notify(abs string, typ fspb.EventType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		rel, ok := strings.CutPrefix(abs, strings.TrimSuffix(w.dir, "/")+"/")
		if !ok || (!w.recursive && strings.Contains(rel, "/")) {
			continue
		}
		select {
		case w.events <- &fspb.FilesystemEvent{Name: rel, Type: typ}:
		default: // a slow watcher loses events, as inotify's queue would
		}
	}
}

func (s *sandbox) String() string { return fmt.Sprintf("fake sandbox %s", s.id) }
