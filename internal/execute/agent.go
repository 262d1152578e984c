// Package execute runs code on a live sandbox by driving its agent: the
// daemon writes the source into a per-execution working directory through
// the agent's /files, runs the language registry's compile and run steps
// (internal/lang) through the agent's process service as the sandbox's
// `user`, streams the output, and lists the directory before and after the
// run to find artifacts. It also keeps stateful code contexts: one small
// kernel program per context (Python or Node) running as `user` inside
// the sandbox, spoken to over its stdin and stdout in line-delimited JSON.
//
// Everything the sandbox says is treated as hostile: output, kernel
// messages and artifacts are capped in size and count, and kernel lines
// are decoded with a length limit.
package execute

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	fspb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// User is the sandbox user code runs as.
const User = "user"

// Agent is a client of one sandbox's agent.
type Agent struct {
	hc    *http.Client
	Procs processconnect.ProcessClient
	FS    filesystemconnect.FilesystemClient
}

// NewAgent returns a client of the agent reached through hc (the daemon's
// connection to the sandbox's agent socket; any host name).
func NewAgent(hc *http.Client) *Agent {
	return &Agent{
		hc:    hc,
		Procs: processconnect.NewProcessClient(hc, "http://agent"),
		FS:    filesystemconnect.NewFilesystemClient(hc, "http://agent"),
	}
}

func asUser[T any](req *connect.Request[T]) *connect.Request[T] {
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(User+":")))
	return req
}

// WriteFile creates or replaces a file as User (parents are created).
func (a *Agent) WriteFile(ctx context.Context, path string, data []byte) error {
	q := url.Values{"path": {path}, "username": {User}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/files?"+q.Encode(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("write %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// ReadFile returns up to max bytes of a file, read as User.
func (a *Agent) ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	q := url.Values{"path": {path}, "username": {User}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/files?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("read %s: over %d bytes", path, max)
	}
	return b, nil
}

// MakeDir creates a directory (and its parents) as User.
func (a *Agent) MakeDir(ctx context.Context, path string) error {
	_, err := a.FS.MakeDir(ctx, asUser(connect.NewRequest(&fspb.MakeDirRequest{Path: path})))
	if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
		return fmt.Errorf("mkdir %s: %w", path, err)
	}
	return nil
}

// fileState is what a snapshot records of a regular file.
type fileState struct {
	size  int64
	mtime int64 // nanoseconds
}

// snapshot lists the regular files under dir (depth levels), by path.
func (a *Agent) snapshot(ctx context.Context, dir string, depth uint32) (map[string]fileState, error) {
	resp, err := a.FS.ListDir(ctx, asUser(connect.NewRequest(&fspb.ListDirRequest{Path: dir, Depth: depth})))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := map[string]fileState{}
	for _, e := range resp.Msg.GetEntries() {
		if e.GetType() != fspb.FileType_FILE_TYPE_FILE {
			continue
		}
		out[e.GetPath()] = fileState{size: e.GetSize(), mtime: e.GetModifiedTime().AsTime().UnixNano()}
	}
	return out, nil
}

// kill ends a process (its whole session) started by the agent.
func (a *Agent) kill(ctx context.Context, pid uint32) {
	req := connect.NewRequest(&pb.SendSignalRequest{
		Process: &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, Signal: pb.Signal_SIGNAL_SIGKILL})
	_, _ = a.Procs.SendSignal(context.WithoutCancel(ctx), asUser(req))
}

// envMap turns KEY=VALUE entries into the process service's map.
func envMap(env []string, extra map[string]string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}
