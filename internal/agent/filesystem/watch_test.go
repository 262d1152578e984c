package filesystem

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

// events runs a WatchDir stream and delivers its filesystem events.
func watchEvents(t *testing.T, e *env, req *pb.WatchDirRequest) <-chan *pb.FilesystemEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := e.client.WatchDir(ctx, as("user", req))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetStart() == nil {
		t.Fatalf("first message %v (%v), want the start event", s.Msg(), s.Err())
	}
	ch := make(chan *pb.FilesystemEvent, 1000)
	go func() {
		defer close(ch)
		for s.Receive() {
			if ev := s.Msg().GetFilesystem(); ev != nil {
				ch <- ev
			}
		}
	}()
	return ch
}

// waitFor reads events until one of type typ for name arrives.
func waitFor(t *testing.T, ch <-chan *pb.FilesystemEvent, typ pb.EventType, name string) *pb.FilesystemEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	var seen []string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %v %q; saw %v", typ, name, seen)
			}
			if ev.GetType() == typ && ev.GetName() == name {
				return ev
			}
			seen = append(seen, ev.GetType().String()+" "+ev.GetName())
		case <-timeout:
			t.Fatalf("no %v %q within 5s; saw %v", typ, name, seen)
		}
	}
}

func TestWatchDirRecursive(t *testing.T) {
	e := newEnv(t, Config{})
	if err := os.MkdirAll(filepath.Join(e.home, "w/old"), 0o755); err != nil {
		t.Fatal(err)
	}
	ch := watchEvents(t, e, &pb.WatchDirRequest{Path: "w", Recursive: true, IncludeEntry: true})
	dir := filepath.Join(e.home, "w")

	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := waitFor(t, ch, pb.EventType_EVENT_TYPE_CREATE, "f")
	if ev.GetEntry().GetPath() != filepath.Join(dir, "f") {
		t.Errorf("create entry %+v", ev.GetEntry())
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_WRITE, "f")
	if err := os.WriteFile(filepath.Join(dir, "old/g"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_WRITE, "old/g")
	if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(dir, "f2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_RENAME, "f")
	waitFor(t, ch, pb.EventType_EVENT_TYPE_CREATE, "f2")
	if err := os.Chmod(filepath.Join(dir, "f2"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_CHMOD, "f2")
	if err := os.Remove(filepath.Join(dir, "f2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_REMOVE, "f2")

	// A directory created after the watch began is watched too.
	if err := os.Mkdir(filepath.Join(dir, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_CREATE, "new")
	if err := os.WriteFile(filepath.Join(dir, "new/h"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ch, pb.EventType_EVENT_TYPE_WRITE, "new/h")
}

// An upload's temporary file is hidden; its rename into place reads as
// envd's in-place write.
func TestWatchSeesUploadAsWrite(t *testing.T) {
	e := newEnv(t, Config{})
	ch := watchEvents(t, e, &pb.WatchDirRequest{Path: "~"})
	putOctet(t, e, "up.txt", "one", nil)
	waitFor(t, ch, pb.EventType_EVENT_TYPE_CREATE, "up.txt")
	waitFor(t, ch, pb.EventType_EVENT_TYPE_WRITE, "up.txt")
	putOctet(t, e, "up.txt", "two", nil)
	waitFor(t, ch, pb.EventType_EVENT_TYPE_WRITE, "up.txt")
	if err := os.WriteFile(filepath.Join(e.home, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing about a temporary file came before the marker.
	for ev := range ch {
		if isUploadTemp(ev.GetName()) {
			t.Errorf("event for a temporary file: %v", ev)
		}
		if ev.GetName() == "marker" {
			break
		}
	}
}

func TestWatchDirKeepalive(t *testing.T) {
	e := newEnv(t, Config{KeepAlive: 50 * time.Millisecond})
	s, err := e.client.WatchDir(context.Background(), as("user", &pb.WatchDirRequest{Path: "~"}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Receive() // start
	if !s.Receive() || s.Msg().GetKeepalive() == nil {
		t.Errorf("got %v (%v), want a keepalive", s.Msg(), s.Err())
	}
}

func TestWatchDirErrors(t *testing.T) {
	e := newEnv(t, Config{})
	if err := os.WriteFile(filepath.Join(e.home, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code connect.Code
	}{{"missing", connect.CodeNotFound}, {"file", connect.CodeInvalidArgument}} {
		s, err := e.client.WatchDir(context.Background(), as("user", &pb.WatchDirRequest{Path: tc.path}))
		if err == nil {
			s.Receive()
			err = s.Err()
		}
		if connect.CodeOf(err) != tc.code {
			t.Errorf("watch %s: %v, want %v", tc.path, err, tc.code)
		}
	}
}

func TestPollingWatcher(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	res, err := e.client.CreateWatcher(ctx, as("user", &pb.CreateWatcherRequest{Path: "~", Recursive: true}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetWatcherId()
	if err := os.WriteFile(filepath.Join(e.home, "p"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []*pb.FilesystemEvent
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(got) < 2; time.Sleep(20 * time.Millisecond) {
		r, err := e.client.GetWatcherEvents(ctx, as("user", &pb.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Msg.GetEvents()...)
	}
	if len(got) < 2 || got[0].GetType() != pb.EventType_EVENT_TYPE_CREATE || got[0].GetName() != "p" || got[1].GetType() != pb.EventType_EVENT_TYPE_WRITE {
		t.Errorf("events %v, want create p, write p", got)
	}
	// Another user cannot see it.
	if _, err := e.client.GetWatcherEvents(ctx, as("root", &pb.GetWatcherEventsRequest{WatcherId: id})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("another user's watcher: %v, want not_found", err)
	}
	if _, err := e.client.RemoveWatcher(ctx, as("user", &pb.RemoveWatcherRequest{WatcherId: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.GetWatcherEvents(ctx, as("user", &pb.GetWatcherEventsRequest{WatcherId: id})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("removed watcher: %v, want not_found", err)
	}
}

func TestKeepAliveFor(t *testing.T) {
	for _, c := range []struct {
		header string
		want   time.Duration
	}{
		{"", 50 * time.Second},
		{"5", 5 * time.Second},
		{"600", 50 * time.Second},
		{"0", 50 * time.Second},
		{"x", 50 * time.Second},
	} {
		h := http.Header{}
		if c.header != "" {
			h.Set("Keepalive-Ping-Interval", c.header)
		}
		if got := keepAliveFor(h, 50*time.Second); got != c.want {
			t.Errorf("keepAliveFor(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}
