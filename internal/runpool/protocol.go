// Package runpool lets `soulbox run` borrow a sandbox that a running
// daemon set up ahead of demand, instead of setting one up itself.
//
// The daemon keeps a few worker sandboxes ready (namespaces, root file
// system, cgroup and seccomp in place; see runtime.Worker and
// internal/runpool/poolserver) and serves a Unix datagram socket in its
// data directory, for root only. `soulbox run` sends one datagram: the
// command, its environment and limits, with the read end of a pipe that
// carries its stdin and one end of a stream socket pair for the answer;
// the daemon runs the command in one of the ready sandboxes, streams
// stdout and stderr back on that connection as frames and sends the
// result, then
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
	"math"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/result"
)

// SocketName is the socket's file name in the daemon's data directory. It
// names the protocol's version: a client and a daemon of different
// versions do not find each other, and the client sets up its own sandbox.
const SocketName = "run2.sock"

// FirstSocketName is the socket of the protocol's first version, which
// daemons of earlier releases served (a stream socket, JSON frames).
const FirstSocketName = "run.sock"

// SocketPath is the socket of the daemon using dataDir.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Request is what `soulbox run` sends (see AppendRequest), with the stdin
// pipe's read end and the answer's connection attached (SCM_RIGHTS, in
// that order).
type Request struct {
	Argv   []string
	Env    []string
	Limits limits.Limits
	// Stream asks for stdout and stderr as they come (frames); without
	// it they arrive in the result only.
	Stream bool
}

// Frame types, daemon to client: a kind byte, a 4-byte big-endian
// length, the payload.
const (
	FrameStdout = 'o'
	FrameStderr = 'e'
	FrameAccept = 'a' // a ready sandbox took the run: send stdin now
	FrameResult = 'r' // a result (AppendResult); the last frame
	FrameCold   = 'c' // no ready sandbox fits: run it yourself; the last frame (never after FrameAccept)
	FrameError  = 'x' // the request is invalid (text); the last frame
	FrameFailed = 'f' // the sandbox failed (text); the last frame
)

// maxFrame caps a frame the client accepts (a result carries two outputs
// of at most limits.Maximums().OutputBytes each, base64-encoded).
var maxFrame = uint32(4*limits.Maximums().OutputBytes + 1<<20)

// MaxRequest caps a request the daemon accepts.
const MaxRequest = 1 << 20

// The request and the result are encoded by hand, not as JSON: the
// client is a fresh process each time, and encoding/json's first use of a
// type (reflection over its fields) cost more than the rest of the
// client's work. Integers are unsigned varints (signed ones zig-zag);
// strings and byte slices are a varint length and the bytes; a list is a
// varint count and its items.

// AppendRequest appends the request frame's body: the flags (1 = stream),
// argv, env, then the limits in the order of limitFields.
func AppendRequest(b []byte, r Request) []byte {
	var flags uint64
	if r.Stream {
		flags |= 1
	}
	b = binary.AppendUvarint(b, flags)
	b = appendStrings(b, r.Argv)
	b = appendStrings(b, r.Env)
	for _, v := range limitFields(&r.Limits) {
		b = binary.AppendVarint(b, *v)
	}
	return binary.AppendUvarint(b, math.Float64bits(r.Limits.CPUs))
}

// ParseRequest decodes AppendRequest's encoding.
func ParseRequest(b []byte) (Request, error) {
	d := decoder{b: b}
	var r Request
	flags := d.uvarint()
	r.Stream = flags&1 != 0
	r.Argv = d.strings()
	r.Env = d.strings()
	for _, v := range limitFields(&r.Limits) {
		*v = d.varint()
	}
	r.Limits.CPUs = math.Float64frombits(d.uvarint())
	if err := d.end(); err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	if flags > 1 {
		return Request{}, errors.New("request: unknown flags")
	}
	return r, nil
}

// limitFields are the integer limits in their wire order (CPUs, a float,
// follows them).
func limitFields(l *limits.Limits) []*int64 {
	return []*int64{&l.MemoryBytes, (*int64)(&l.CPUTime), (*int64)(&l.WallTime), &l.Pids, &l.OutputBytes,
		&l.DiskBytes, &l.FileBytes, &l.OpenFiles, &l.StackBytes, &l.ShmBytes}
}

// AppendResult appends a result frame's body: status, exit code, signal,
// stdout, stderr, the truncation flags (1 stdout, 2 stderr), wall and CPU
// time in nanoseconds, peak memory. A pooled run collects no files, so
// none are carried.
func AppendResult(b []byte, r *result.Result) []byte {
	b = appendBytes(b, []byte(r.Status))
	b = binary.AppendVarint(b, int64(r.ExitCode))
	b = binary.AppendVarint(b, int64(r.Signal))
	b = appendBytes(b, r.Stdout)
	b = appendBytes(b, r.Stderr)
	var flags uint64
	if r.StdoutTruncated {
		flags |= 1
	}
	if r.StderrTruncated {
		flags |= 2
	}
	b = binary.AppendUvarint(b, flags)
	b = binary.AppendVarint(b, int64(r.Wall))
	b = binary.AppendVarint(b, int64(r.CPU))
	return binary.AppendVarint(b, r.PeakMemory)
}

// ParseResult decodes AppendResult's encoding.
func ParseResult(b []byte) (*result.Result, error) {
	d := decoder{b: b}
	r := &result.Result{Status: result.Status(d.raw())}
	r.ExitCode = int(d.varint())
	r.Signal = unix.Signal(d.varint())
	r.Stdout = d.bytes()
	r.Stderr = d.bytes()
	flags := d.uvarint()
	r.StdoutTruncated, r.StderrTruncated = flags&1 != 0, flags&2 != 0
	r.Wall = time.Duration(d.varint())
	r.CPU = time.Duration(d.varint())
	r.PeakMemory = d.varint()
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return r, nil
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendBytes(b, []byte(s))
	}
	return b
}

// decoder reads the encoding above; the first error sticks and later
// reads return zero values.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated or malformed")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads a zig-zag signed varint (binary.AppendVarint's).
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// raw returns the next length-prefixed bytes, not copied.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errShort
	}
	if d.err != nil {
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

// bytes returns a copy of raw's (nil when empty, as a decoded empty
// output is).
func (d *decoder) bytes() []byte {
	if p := d.raw(); len(p) > 0 {
		return slices.Clone(p)
	}
	return nil
}

func (d *decoder) strings() []string {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each string takes at least a byte
		d.err = errShort
	}
	if d.err != nil || n == 0 {
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, string(d.raw()))
	}
	if d.err != nil {
		return nil
	}
	return ss
}

// end reports the first error, or bytes left over.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes too many", len(d.b))
	}
	return d.err
}

// WriteFrame writes one frame, in one write: the reader wakes once.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	b := make([]byte, 5, 5+len(payload))
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// ErrCold means no daemon sandbox took the run: set one up yourself.
var ErrCold = errors.New("no ready sandbox")

// ErrInvalid wraps the daemon's refusal of a request it accepted (limits
// beyond its maximums, an invalid command): the same answer the client's
// own set-up would give.
var ErrInvalid = errors.New("invalid run")
