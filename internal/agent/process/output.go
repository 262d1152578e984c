package process

import (
	"sync"
	"sync/atomic"
)

// output is the bounded history of one process's output chunks. Readers
// follow it by sequence number; when the history exceeds its byte budget
// (its own, or the service's total shared by every process) the oldest
// chunks are dropped, so a reader that re-attaches late gets what is
// still kept. Safe for concurrent use.
type output struct {
	mu      sync.Mutex
	chunks  []chunk
	first   int64 // sequence number of chunks[0]
	size    int
	max     int
	total   *budget // shared by the service's processes; nil: none
	closed  bool
	changed chan struct{} // closed and replaced on every append and on close
}

// budget bounds the output history of all of a service's processes
// together: a tenant starting many processes that each fill their own
// history would otherwise grow the agent without bound.
type budget struct {
	used atomic.Int64
	max  int64
}

// over reports whether the histories hold more than the budget.
func (b *budget) over() bool { return b != nil && b.used.Load() > b.max }

func (b *budget) add(n int) {
	if b != nil {
		b.used.Add(int64(n))
	}
}

// chunk is one piece of output from one stream.
type chunk struct {
	stream stream
	data   []byte
}

type stream int

const (
	streamStdout stream = iota
	streamStderr
	streamPTY
)

func newOutput(max int, total *budget) *output {
	return &output{max: max, total: total, changed: make(chan struct{})}
}

func (o *output) append(s stream, p []byte) {
	data := append([]byte(nil), p...)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.chunks = append(o.chunks, chunk{s, data})
	o.size += len(data)
	o.total.add(len(data))
	// The process writing pays: its oldest output goes first (a live
	// reader has usually sent it already).
	for (o.size > o.max || o.total.over()) && len(o.chunks) > 1 {
		n := len(o.chunks[0].data)
		o.size -= n
		o.total.add(-n)
		o.chunks[0] = chunk{}
		o.chunks = o.chunks[1:]
		o.first++
	}
	o.wake()
}

// release gives the history's bytes back to the shared budget; the
// process is forgotten. The chunks go as trimmed ones do (first moves on),
// so a reader still following finds nothing more, not a bad position.
func (o *output) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total.add(-o.size)
	o.first += int64(len(o.chunks))
	o.chunks, o.size = nil, 0
}

// close marks the end of output: readers drain what is left and stop.
func (o *output) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.wake()
}

func (o *output) wake() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// read returns the chunks from sequence number from on (or from the oldest
// kept), the next sequence number, a channel closed when more arrives, and
// whether the output has ended and everything has been returned.
func (o *output) read(from int64) (cs []chunk, next int64, more <-chan struct{}, done bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if from < o.first {
		from = o.first
	}
	end := o.first + int64(len(o.chunks))
	cs = append(cs, o.chunks[from-o.first:]...)
	return cs, end, o.changed, o.closed
}
