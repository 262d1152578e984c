package process

import "sync"

// output is the bounded history of one process's output chunks. Readers
// follow it by sequence number; when the history exceeds its byte budget
// the oldest chunks are dropped, so a reader that re-attaches late gets
// what is still kept. Safe for concurrent use.
type output struct {
	mu      sync.Mutex
	chunks  []chunk
	first   int64 // sequence number of chunks[0]
	size    int
	max     int
	closed  bool
	changed chan struct{} // closed and replaced on every append and on close
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

func newOutput(max int) *output {
	return &output{max: max, changed: make(chan struct{})}
}

func (o *output) append(s stream, p []byte) {
	data := append([]byte(nil), p...)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.chunks = append(o.chunks, chunk{s, data})
	o.size += len(data)
	for o.size > o.max && len(o.chunks) > 1 {
		o.size -= len(o.chunks[0].data)
		o.chunks[0] = chunk{}
		o.chunks = o.chunks[1:]
		o.first++
	}
	o.wake()
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
