package soulbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect"

	fspb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
)

// Files reads, writes and inspects files in a sandbox. Get it from
// Sandbox.Files; As returns a copy acting as another user. Relative paths
// are relative to the user's home directory. It is safe for concurrent use.
type Files struct {
	sbx  *Sandbox
	rpc  filesystemconnect.FilesystemClient
	user string
}

// As returns a Files that acts as the given sandbox user.
func (f *Files) As(user string) *Files {
	c := *f
	c.user = user
	return &c
}

// FileType is the type of a file system entry.
type FileType string

// Entry types.
const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
)

// EntryInfo describes a file system entry.
type EntryInfo struct {
	Name          string      `json:"name"`
	Type          FileType    `json:"type"`
	Path          string      `json:"path"`
	Size          int64       `json:"size"`
	Mode          os.FileMode `json:"mode"`
	Permissions   string      `json:"permissions"`
	Owner         string      `json:"owner"`
	Group         string      `json:"group"`
	ModTime       time.Time   `json:"modifiedTime"`
	SymlinkTarget string      `json:"symlinkTarget,omitempty"`
}

func fileType(t fspb.FileType) FileType {
	switch t {
	case fspb.FileType_FILE_TYPE_FILE:
		return TypeFile
	case fspb.FileType_FILE_TYPE_DIRECTORY:
		return TypeDir
	case fspb.FileType_FILE_TYPE_SYMLINK:
		return TypeSymlink
	}
	return ""
}

func entryInfo(e *fspb.EntryInfo) EntryInfo {
	info := EntryInfo{
		Name:          e.GetName(),
		Type:          fileType(e.GetType()),
		Path:          e.GetPath(),
		Size:          e.GetSize(),
		Mode:          os.FileMode(e.GetMode()),
		Permissions:   e.GetPermissions(),
		Owner:         e.GetOwner(),
		Group:         e.GetGroup(),
		SymlinkTarget: e.GetSymlinkTarget(),
	}
	if e.GetModifiedTime() != nil {
		info.ModTime = e.GetModifiedTime().AsTime()
	}
	return info
}

// fileRequest builds a request on the agent's /files endpoint.
func (f *Files) fileRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	q := url.Values{}
	q.Set("path", path)
	q.Set("username", f.user)
	req, err := http.NewRequestWithContext(ctx, method, f.sbx.client.endpoint("/files", q), body)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// Open returns the content of the file at path as a stream, which the
// caller must close.
func (f *Files) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := f.fileRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.sbx.dataHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, errorFromResponse(resp)
	}
	return resp.Body, nil
}

// Read copies the file at path to w as it downloads.
func (f *Files) Read(ctx context.Context, path string, w io.Writer) error {
	rc, err := f.Open(ctx, path)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// ReadFile returns the content of the file at path.
func (f *Files) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var b bytes.Buffer
	if err := f.Read(ctx, path, &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write creates or replaces the file at path with what r yields, streaming
// it (r is never read into memory as a whole), and creates missing parent
// directories.
func (f *Files) Write(ctx context.Context, path string, r io.Reader) error {
	if r == nil {
		r = http.NoBody
	}
	req, err := f.fileRequest(ctx, http.MethodPost, path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := f.sbx.dataHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFromResponse(resp)
	}
	var written []struct {
		Path string `json:"path"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&written); err != nil {
		return fmt.Errorf("write %s: decoding the answer: %w", path, err)
	}
	return nil
}

// WriteFile creates or replaces the file at path with data.
func (f *Files) WriteFile(ctx context.Context, path string, data []byte) error {
	return f.Write(ctx, path, bytes.NewReader(data))
}

// List returns the entries under the directory path, descending depth
// levels (0 and 1 both mean the directory itself only).
func (f *Files) List(ctx context.Context, path string, depth int) ([]EntryInfo, error) {
	if depth < 0 {
		return nil, fmt.Errorf("%w: negative depth", ErrInvalid)
	}
	if depth == 0 {
		depth = 1
	}
	resp, err := f.rpc.ListDir(ctx, withUser(connect.NewRequest(&fspb.ListDirRequest{Path: path, Depth: uint32(depth)}), f.user))
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]EntryInfo, 0, len(resp.Msg.GetEntries()))
	for _, e := range resp.Msg.GetEntries() {
		out = append(out, entryInfo(e))
	}
	return out, nil
}

// Stat describes the entry at path; ErrNotFound if there is none.
func (f *Files) Stat(ctx context.Context, path string) (*EntryInfo, error) {
	resp, err := f.rpc.Stat(ctx, withUser(connect.NewRequest(&fspb.StatRequest{Path: path}), f.user))
	if err != nil {
		return nil, rpcError(err)
	}
	info := entryInfo(resp.Msg.GetEntry())
	return &info, nil
}

// Exists reports whether there is an entry at path.
func (f *Files) Exists(ctx context.Context, path string) (bool, error) {
	_, err := f.Stat(ctx, path)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MakeDir creates the directory path and its missing parents. It reports
// false (and no error) when the directory already existed.
func (f *Files) MakeDir(ctx context.Context, path string) (bool, error) {
	_, err := f.rpc.MakeDir(ctx, withUser(connect.NewRequest(&fspb.MakeDirRequest{Path: path}), f.user))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		return false, nil
	}
	if err != nil {
		return false, rpcError(err)
	}
	return true, nil
}

// Move renames src to dst and describes the result.
func (f *Files) Move(ctx context.Context, src, dst string) (*EntryInfo, error) {
	resp, err := f.rpc.Move(ctx, withUser(connect.NewRequest(&fspb.MoveRequest{Source: src, Destination: dst}), f.user))
	if err != nil {
		return nil, rpcError(err)
	}
	info := entryInfo(resp.Msg.GetEntry())
	return &info, nil
}

// Remove deletes the file or directory (with its contents) at path.
func (f *Files) Remove(ctx context.Context, path string) error {
	_, err := f.rpc.Remove(ctx, withUser(connect.NewRequest(&fspb.RemoveRequest{Path: path}), f.user))
	return rpcError(err)
}

// EventType is the kind of a file system change.
type EventType string

// Event types.
const (
	EventCreate EventType = "create"
	EventWrite  EventType = "write"
	EventRemove EventType = "remove"
	EventRename EventType = "rename"
	EventChmod  EventType = "chmod"
)

func eventType(t fspb.EventType) EventType {
	switch t {
	case fspb.EventType_EVENT_TYPE_CREATE:
		return EventCreate
	case fspb.EventType_EVENT_TYPE_WRITE:
		return EventWrite
	case fspb.EventType_EVENT_TYPE_REMOVE:
		return EventRemove
	case fspb.EventType_EVENT_TYPE_RENAME:
		return EventRename
	case fspb.EventType_EVENT_TYPE_CHMOD:
		return EventChmod
	}
	return ""
}

// FileEvent is one change under a watched directory.
type FileEvent struct {
	Type EventType
	Name string // relative to the watched directory
}

// Watcher follows changes under a directory until Close or the end of
// the context given to Watch. Read events either from Events or with
// Next, not both. It is safe for concurrent use.
type Watcher struct {
	events chan FileEvent
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	err error
}

// Watch starts watching the directory path (and its subdirectories when
// recursive). It returns once the agent watches.
func (f *Files) Watch(ctx context.Context, path string, recursive bool) (*Watcher, error) {
	wctx, cancel := context.WithCancel(ctx)
	req := withUser(connect.NewRequest(&fspb.WatchDirRequest{Path: path, Recursive: recursive}), f.user)
	req.Header().Set(headerKeepalive, keepaliveSeconds)
	stream, err := f.rpc.WatchDir(wctx, req)
	if err != nil {
		cancel()
		return nil, rpcError(err)
	}
	// The agent sends a start event once the watch is in place.
	for {
		if !stream.Receive() {
			err := stream.Err()
			stream.Close()
			cancel()
			if err == nil {
				err = errors.New("watch stream ended before it started")
			}
			return nil, rpcError(err)
		}
		if stream.Msg().GetStart() != nil {
			break
		}
	}
	w := &Watcher{events: make(chan FileEvent, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(w.events)
		defer stream.Close()
		for stream.Receive() {
			ev := stream.Msg().GetFilesystem()
			if ev == nil {
				continue
			}
			select {
			case w.events <- FileEvent{Type: eventType(ev.GetType()), Name: ev.GetName()}:
			case <-wctx.Done():
				return
			}
		}
		if err := stream.Err(); err != nil && wctx.Err() == nil {
			w.mu.Lock()
			w.err = rpcError(err)
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// Events returns the channel of changes; it is closed when the watch ends
// (then see Err).
func (w *Watcher) Events() <-chan FileEvent { return w.events }

// Next waits for the next change. It returns io.EOF once the watch ended
// normally (Close or the Watch context), or the error that ended it.
func (w *Watcher) Next(ctx context.Context) (FileEvent, error) {
	select {
	case ev, ok := <-w.events:
		if ok {
			return ev, nil
		}
		if err := w.Err(); err != nil {
			return FileEvent{}, err
		}
		return FileEvent{}, io.EOF
	case <-ctx.Done():
		return FileEvent{}, ctx.Err()
	}
}

// Err returns the error that ended the watch, if any, once Events is
// closed.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops watching and waits for the stream to end.
func (w *Watcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}
