// Package runpool lets `soulbox run` borrow a sandbox that a running
// daemon set up ahead of demand, instead of setting one up itself.
//
// The daemon keeps a few one-shot worker sandboxes ready (namespaces,
// root file system, cgroup and seccomp in place; see runtime.Worker) and
// serves a Unix socket in its data directory, for root only. `soulbox run`
// sends the command, its environment and limits, and the read end of a
// pipe that carries its stdin; the daemon runs the command in one of the
// ready sandboxes, streams stdout and stderr back as frames, sends the
// result, and destroys that sandbox: each run still gets a sandbox of its
// own, used once. When none is ready or the run needs what a ready one
// does not have (other disk or /dev/shm sizes, larger limits, files
// copied in, network), the daemon answers "cold" and the command sets up
// its own sandbox as it does without a daemon.
package runpool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/soulbox-dev/soulbox/internal/limits"
)

// SocketName is the socket's file name in the daemon's data directory.
const SocketName = "run.sock"

// SocketPath is the socket of the daemon using dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Request is what `soulbox run` sends, with the stdin pipe's read end
// attached (SCM_RIGHTS).
type Request struct {
	Argv   []string      `json:"argv"`
	Env    []string      `json:"env,omitempty"`
	Limits limits.Limits `json:"limits"`
	// Stream asks for stdout and stderr as they come (frames); without
	// it they arrive in the result only.
	Stream bool `json:"stream,omitempty"`
}

// Frame types, daemon to client.
const (
	frameStdout = 'o'
	frameStderr = 'e'
	frameAccept = 'a' // a ready sandbox took the run: send stdin now
	frameResult = 'r' // JSON of a runtime.Result; the last frame
	frameCold   = 'c' // no ready sandbox fits: run it yourself; the last frame (never after frameAccept)
	frameError  = 'x' // the request is invalid (text); the last frame
	frameFailed = 'f' // the sandbox failed (text); the last frame
)

// maxFrame caps a frame the client accepts (a result carries two outputs
// of at most limits.Maximums().OutputBytes each, base64-encoded).
var maxFrame = uint32(4*limits.Maximums().OutputBytes + 1<<20)

// maxRequest caps a request the daemon accepts.
const maxRequest = 1 << 20

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("runpool: frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return hdr[0], b, nil
}

// ErrCold means no daemon sandbox took the run: set one up yourself.
var ErrCold = errors.New("no ready sandbox")
