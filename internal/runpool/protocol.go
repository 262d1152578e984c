// Package runpool lets `soulbox run` borrow a sandbox that a running
// daemon set up ahead of demand, instead of setting one up itself.
//
// The daemon keeps a few worker sandboxes ready (namespaces, root file
// system, cgroup and seccomp in place; see runtime.Worker and
// internal/runpool/poolserver) and serves a Unix socket in its data
// directory, for root only. `soulbox run` sends the command, its
// environment and limits, and the read end of a pipe that carries its
// stdin; the daemon runs the command in one of the ready sandboxes,
// streams stdout and stderr back as frames and sends the result, then
// cleans the sandbox for its next run (or retires it). When none is ready
// or the run needs what a ready one does not have (other disk or /dev/shm
// sizes, larger limits, files copied in, network), the daemon answers
// "cold" and the command sets up its own sandbox as it does without a
// daemon.
//
// This package is the protocol and the client; it links neither the
// runtime nor the daemon, so the command-line fast path stays small.
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

// Frame types, daemon to client: a kind byte, a 4-byte big-endian
// length, the payload.
const (
	FrameStdout = 'o'
	FrameStderr = 'e'
	FrameAccept = 'a' // a ready sandbox took the run: send stdin now
	FrameResult = 'r' // JSON of a runtime.Result; the last frame
	FrameCold   = 'c' // no ready sandbox fits: run it yourself; the last frame (never after FrameAccept)
	FrameError  = 'x' // the request is invalid (text); the last frame
	FrameFailed = 'f' // the sandbox failed (text); the last frame
)

// maxFrame caps a frame the client accepts (a result carries two outputs
// of at most limits.Maximums().OutputBytes each, base64-encoded).
var maxFrame = uint32(4*limits.Maximums().OutputBytes + 1<<20)

// MaxRequest caps a request the daemon accepts.
const MaxRequest = 1 << 20

// WriteFrame writes one frame, in one write: the reader wakes once.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	b := make([]byte, 5, 5+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
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

// ErrInvalid wraps the daemon's refusal of a request it accepted (limits
// beyond its maximums, an invalid command): the same answer the client's
// own set-up would give.
var ErrInvalid = errors.New("invalid run")
