// Package result is what one sandboxed run reports: its verdict, exit
// status, output and measurements, and the JSON object of
// `soulbox run --json`. It is small on purpose: the command-line fast path
// (internal/quickrun) links it without the runtime.
package result

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Status is the verdict of a run.
type Status string

// Verdicts, as in docs/ARCHITECTURE.md.
const (
	StatusOK  Status = "OK"  // exited 0
	StatusRE  Status = "RE"  // exited non-zero
	StatusSG  Status = "SG"  // killed by a signal
	StatusTLE Status = "TLE" // wall or CPU time limit
	StatusMLE Status = "MLE" // the cgroup's OOM killer fired
	StatusOLE Status = "OLE" // stdout or stderr over the output limit
	StatusFSE Status = "FSE" // file size limit or the writable layer full
	StatusSV  Status = "SV"  // killed by the seccomp filter (SIGSYS)
	StatusXX  Status = "XX"  // internal error
)

// Result is what happened to one run.
type Result struct {
	Status          Status
	ExitCode        int
	Signal          unix.Signal // 0 if the program exited
	Stdout, Stderr  []byte
	StdoutTruncated bool
	StderrTruncated bool
	Wall            time.Duration
	CPU             time.Duration
	PeakMemory      int64
	// Files are those the run created or modified, when Spec.Collect
	// asked for them; FilesTruncated when some were left out.
	Files          []File
	FilesTruncated bool
	// FilesError says why collecting the files failed part way (Files
	// then holds those read before): a stream the runtime refused, or
	// collection over its time bound.
	FilesError string

	// OOMKills counts the cgroup's OOM kills during the run (what tells
	// MLE from other deaths); not part of any wire format.
	OOMKills int64 `json:"-"`
}

// File is a file a run created or modified, when collected.
type File struct {
	Path    string // relative to the collected directory, "/"-separated
	Mode    uint32 // permission bits
	Size    int64  // real size, even when Omitted
	Data    []byte // nil when Omitted
	Omitted bool   // the content was over the collection's size cap
}

// WriteJSON writes the documented JSON object of `soulbox run --json`
// followed by a newline. It streams the output fields so that memory stays
// bounded by the captured output itself, whatever its escaping costs
// (a NUL byte takes six characters in JSON). Output that is not valid
// UTF-8 has its invalid bytes replaced by U+FFFD.
func (r *Result) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	signal := "null"
	if r.Signal != 0 {
		signal = strconv.Quote(unix.SignalName(r.Signal))
	}
	fmt.Fprintf(bw, `{"status":%q,"exit_code":%d,"signal":%s,"stdout":`, r.Status, r.ExitCode, signal)
	writeJSONString(bw, r.Stdout)
	bw.WriteString(`,"stderr":`)
	writeJSONString(bw, r.Stderr)
	fmt.Fprintf(bw, `,"stdout_truncated":%t,"stderr_truncated":%t,"wall_ms":%s,"cpu_ms":%s,"peak_memory_bytes":%d}`+"\n",
		r.StdoutTruncated, r.StderrTruncated, ms(r.Wall), ms(r.CPU), r.PeakMemory)
	return bw.Flush()
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes b as a JSON string literal.
func writeJSONString(w *bufio.Writer, b []byte) {
	w.WriteByte('"')
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				w.WriteByte('\\')
				w.WriteByte(c)
			case c == '\n':
				w.WriteString(`\n`)
			case c == '\r':
				w.WriteString(`\r`)
			case c == '\t':
				w.WriteString(`\t`)
			case c < 0x20 || c == 0x7f:
				w.WriteString(`\u00`)
				w.WriteByte(hexDigits[c>>4])
				w.WriteByte(hexDigits[c&0xf])
			default:
				w.WriteByte(c)
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			w.WriteString(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			fmt.Fprintf(w, `\u%04x`, r)
		default:
			w.Write(b[:size])
		}
		b = b[size:]
	}
	w.WriteByte('"')
}
