package execute

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Caps on what a kernel may send: it runs the user's code, so everything
// it writes is untrusted.
const (
	// MaxKernelLine caps one protocol line (a PNG figure is one line).
	MaxKernelLine = 32 << 20
	// MaxExecutionBytes caps everything one execution may send back.
	MaxExecutionBytes = 128 << 20
)

// KernelResult is a value a context execution displays: the last
// expression's value (IsMainResult) or a figure.
type KernelResult struct {
	IsMainResult bool            `json:"is_main_result"`
	Text         string          `json:"text,omitempty"` // text/plain
	HTML         string          `json:"html,omitempty"`
	Markdown     string          `json:"markdown,omitempty"`
	SVG          string          `json:"svg,omitempty"`
	LaTeX        string          `json:"latex,omitempty"`
	PNG          string          `json:"png,omitempty"` // base64
	JPEG         string          `json:"jpeg,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"` // a DataFrame: {columns, index, data}
}

// KernelError is an exception an execution raised.
type KernelError struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

// ContextEvent is one line of a context execution's stream.
type ContextEvent struct {
	Type           string        `json:"type"` // stdout, stderr, result, error, end
	Text           string        `json:"text,omitempty"`
	Result         *KernelResult `json:"result,omitempty"`
	Error          *KernelError  `json:"error,omitempty"`
	ExecutionCount int           `json:"execution_count,omitempty"`
}

// kernelMsg is a line from a kernel.
type kernelMsg struct {
	ID             string                     `json:"id"`
	Type           string                     `json:"type"`
	Text           string                     `json:"text"`
	Data           map[string]json.RawMessage `json:"data"`
	Main           bool                       `json:"main"`
	Name           string                     `json:"name"`
	Value          string                     `json:"value"`
	Traceback      string                     `json:"traceback"`
	ExecutionCount int                        `json:"execution_count"`
}

// parseKernelLine decodes one protocol line into the execution id it
// belongs to and its event. A line that is not a protocol message (a
// stray write to the kernel's stdout) comes back as stdout text with an
// empty id.
func parseKernelLine(line []byte) (string, ContextEvent, error) {
	var m kernelMsg
	if len(line) > MaxKernelLine {
		return "", ContextEvent{}, fmt.Errorf("kernel line of %d bytes is over the cap", len(line))
	}
	if !decodeMsg(line, &m) {
		// Not a protocol message: a stray write to the kernel's stdout.
		return "", ContextEvent{Type: "stdout", Text: validUTF8(string(line)) + "\n"}, nil
	}
	switch m.Type {
	case "stdout", "stderr":
		return m.ID, ContextEvent{Type: m.Type, Text: validUTF8(m.Text)}, nil
	case "end":
		if m.ExecutionCount < 0 {
			m.ExecutionCount = 0
		}
		return m.ID, ContextEvent{Type: "end", ExecutionCount: m.ExecutionCount}, nil
	case "error":
		return m.ID, ContextEvent{Type: "error", Error: &KernelError{Name: validUTF8(m.Name), Value: validUTF8(m.Value), Traceback: validUTF8(m.Traceback)}}, nil
	case "result":
		r, err := resultOf(m.Data)
		if err != nil {
			return m.ID, ContextEvent{}, err
		}
		r.IsMainResult = m.Main
		return m.ID, ContextEvent{Type: "result", Result: r}, nil
	}
	return m.ID, ContextEvent{}, fmt.Errorf("unknown kernel message type %q", m.Type)
}

// decodeMsg reports whether line is a protocol message.
func decodeMsg(line []byte, m *kernelMsg) bool {
	return json.Unmarshal(line, m) == nil && m.Type != ""
}

// resultOf maps a MIME bundle to a result, checking each representation.
func resultOf(data map[string]json.RawMessage) (*KernelResult, error) {
	r := &KernelResult{}
	str := func(mime string, dst *string) error {
		raw, ok := data[mime]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("result %s: not a string", mime)
		}
		*dst = validUTF8(*dst)
		return nil
	}
	b64 := func(mime string, dst *string) error {
		if err := str(mime, dst); err != nil {
			return err
		}
		if _, err := base64.StdEncoding.DecodeString(*dst); err != nil {
			*dst = ""
			return fmt.Errorf("result %s: not base64", mime)
		}
		return nil
	}
	for _, f := range []func() error{
		func() error { return str("text/plain", &r.Text) },
		func() error { return str("text/html", &r.HTML) },
		func() error { return str("text/markdown", &r.Markdown) },
		func() error { return str("image/svg+xml", &r.SVG) },
		func() error { return str("text/latex", &r.LaTeX) },
		func() error { return b64("image/png", &r.PNG) },
		func() error { return b64("image/jpeg", &r.JPEG) },
	} {
		if err := f(); err != nil {
			return nil, err
		}
	}
	if raw, ok := data["application/json"]; ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("result application/json: not JSON")
		}
		var c bytes.Buffer
		if err := json.Compact(&c, raw); err != nil {
			return nil, err
		}
		r.Data = c.Bytes()
	}
	return r, nil
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}

// lineSplitter cuts a byte stream into lines of at most max bytes; an
// overlong line is dropped (reported once) up to its newline.
type lineSplitter struct {
	max      int
	buf      []byte
	skipping bool
}

// feed adds b and calls line for each complete line (without "\n") and
// over for each dropped overlong line.
func (s *lineSplitter) feed(b []byte, line func([]byte), over func()) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !s.skipping {
				s.buf = append(s.buf, b...)
				if len(s.buf) > s.max {
					s.buf, s.skipping = nil, true
					over()
				}
			}
			return
		}
		if !s.skipping {
			s.buf = append(s.buf, b[:i]...)
			if len(s.buf) > s.max {
				over()
			} else {
				line(s.buf)
			}
		}
		s.buf, s.skipping = s.buf[:0], false
		b = b[i+1:]
	}
}
