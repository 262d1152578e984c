package judge

import (
	"io"
	"sync"
)

// Relay is an in-memory pipe between a run's output tee (runtime.Spec's
// Stdout or Stderr) and another run's stdin (Spec.Stdin), or a client
// connection. Unlike io.Pipe, a write does not wait for a reader: with
// max 0 it never blocks, so the runtime's output capture, which calls the
// tee while it drains the program's pipe, cannot be held up by a consumer
// that stopped reading (a program that exited, a client that went away).
// The capture tees at most the output limit, which bounds the buffer.
// With max > 0, a write waits while max bytes or more are pending, for
// producers that are not bounded otherwise (a client's stdin).
//
// Every Relay must be closed on both sides by its owner: CloseWrite when
// the producer is done (the reader gets the pending bytes, then EOF), and
// CloseRead when the consumer is gone (pending and later bytes are
// dropped, blocked calls return). It is safe for concurrent use.
type Relay struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	max     int
	wclosed bool
	rclosed bool
}

// NewRelay returns a Relay; see Relay for max.
func NewRelay(max int) *Relay {
	r := &Relay{max: max}
	r.cond.L = &r.mu
	return r
}

// Write queues p for the reader. It fails after CloseWrite or CloseRead.
func (r *Relay) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.max > 0 && len(r.buf) >= r.max && !r.rclosed && !r.wclosed {
		r.cond.Wait()
	}
	if r.wclosed || r.rclosed {
		return 0, io.ErrClosedPipe
	}
	r.buf = append(r.buf, p...)
	r.cond.Broadcast()
	return len(p), nil
}

// Read returns pending bytes, waiting for some; io.EOF once the writer
// closed and everything was read; io.ErrClosedPipe after CloseRead.
func (r *Relay) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.buf) == 0 && !r.wclosed && !r.rclosed {
		r.cond.Wait()
	}
	if r.rclosed {
		return 0, io.ErrClosedPipe
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 {
		r.buf = nil // let a large burst's array go
	}
	r.cond.Broadcast()
	return n, nil
}

// CloseWrite ends the stream: the reader gets what is pending, then EOF.
func (r *Relay) CloseWrite() {
	r.mu.Lock()
	r.wclosed = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// CloseRead drops what is pending and makes every later call fail.
func (r *Relay) CloseRead() {
	r.mu.Lock()
	r.rclosed = true
	r.buf = nil
	r.cond.Broadcast()
	r.mu.Unlock()
}
