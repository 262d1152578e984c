package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/soulbox-dev/soulbox/internal/judge"
	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Bounds of an interactive run's WebSocket.
const (
	interactiveFirstWait = 30 * time.Second // for the submission message
	interactiveStdinMax  = 1 << 20          // stdin pending before reads pause
	interactiveFrameMax  = 1 << 20          // a stdin message
	interactiveFlushWait = 10 * time.Second // for the client to take the last output
)

// interactiveRequest is the first message of GET /judge/interactive.
type interactiveRequest struct {
	Language string          `json:"language"`
	Source   string          `json:"source"`
	Limits   json.RawMessage `json:"limits,omitempty"` // overrides, as POST /judge's
}

// interactiveMsg is every text message of the protocol, both ways (see
// docs/API.md): from the client stdin and close_stdin; from the daemon
// compile, stdout, stderr, result and error.
type interactiveMsg struct {
	Type string `json:"type"`
	Data string `json:"data,omitempty"`
	// DataBase64 carries output that is not UTF-8.
	DataBase64 string `json:"data_base64,omitempty"`
	// compile
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Cached *bool  `json:"cached,omitempty"`
	// compile and result
	Status string   `json:"status,omitempty"`
	TimeMS *float64 `json:"time_ms,omitempty"`
	// result
	Verdict         string   `json:"verdict,omitempty"`
	ExitCode        *int     `json:"exit_code,omitempty"`
	WallMS          *float64 `json:"wall_ms,omitempty"`
	MemoryBytes     *int64   `json:"memory_bytes,omitempty"`
	StdoutTruncated bool     `json:"stdout_truncated,omitempty"`
	StderrTruncated bool     `json:"stderr_truncated,omitempty"`
	// error: the message and its HTTP-equivalent status
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`
}

// judgeInteractive serves GET /judge/interactive: one program run with
// its stdin and output streamed over a WebSocket as they happen. The
// first message is the submission; the daemon answers with the compile
// result, streams stdout and stderr while the client sends stdin, and
// ends with the result. Authentication is the API key (s.auth).
func (s *Server) judgeInteractive(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Executor == nil {
		s.writeErr(w, fmt.Errorf("%w: this daemon does not judge", errUnsupported))
		return
	}
	if err := checkUpgrade(r); err != nil {
		s.writeErr(w, err)
		return
	}
	// Authentication is by key, never by cookie: another origin's page
	// gains nothing it does not already hold.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	is := &interactiveSession{s: s, conn: conn}
	is.serve(context.WithoutCancel(r.Context()))
}

// interactiveSession is one connection of GET /judge/interactive.
type interactiveSession struct {
	s    *Server
	conn *websocket.Conn
}

func (is *interactiveSession) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := is.readRequest(ctx)
	if err != nil {
		is.fail(ctx, err)
		return
	}
	l, lim, err := is.s.checkInteractive(req)
	if err != nil {
		is.fail(ctx, err)
		return
	}
	e := is.s.cfg.Executor
	p, err := e.Prepare(ctx, l, []byte(req.Source))
	if err != nil {
		is.fail(ctx, err)
		return
	}
	if err := is.send(ctx, compileMsg(p.Compile)); err != nil {
		return
	}
	if !p.OK() {
		is.send(ctx, interactiveMsg{Type: "result", Status: judge.CE, Verdict: judge.CE})
		is.conn.Close(websocket.StatusNormalClosure, "")
		return
	}

	runCtx, runCancel := context.WithCancel(ctx)
	defer runCancel()
	stdin := judge.NewRelay(interactiveStdinMax)
	stdout, stderr := judge.NewRelay(0), judge.NewRelay(0)
	spec := p.JudgeSpec(lim, stdin)
	spec.Stdout, spec.Stderr = stdout, stderr

	// Client → stdin. A client that leaves ends the run; a bad message
	// ends the session.
	bad := make(chan error, 1) // a bad message from the client
	go func() {
		defer stdin.CloseWrite()
		is.conn.SetReadLimit(interactiveFrameMax)
		for {
			typ, data, err := is.conn.Read(ctx)
			if err != nil {
				runCancel()
				return
			}
			if typ == websocket.MessageBinary {
				stdin.Write(data) // fails only once the run is over
				continue
			}
			var m interactiveMsg
			if err := json.Unmarshal(data, &m); err != nil {
				bad <- fmt.Errorf("%w: malformed message: %v", errBadRequest, err)
				runCancel()
				return
			}
			switch m.Type {
			case "stdin":
				stdin.Write([]byte(m.Data))
			case "close_stdin":
				stdin.CloseWrite()
			default:
				bad <- fmt.Errorf("%w: unknown message type %q: want stdin or close_stdin", errBadRequest, m.Type)
				runCancel()
				return
			}
		}
	}()
	// Program → client.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var senders sync.WaitGroup
	senders.Add(2)
	go func() { defer senders.Done(); is.forward(wctx, "stdout", stdout) }()
	go func() { defer senders.Done(); is.forward(wctx, "stderr", stderr) }()

	res, runErr := e.Runner.Run(runCtx, spec)
	stdin.CloseRead()
	stdout.CloseWrite()
	stderr.CloseWrite()
	flushed := make(chan struct{})
	go func() { senders.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(interactiveFlushWait):
		wcancel() // the client does not read
		stdout.CloseRead()
		stderr.CloseRead()
		<-flushed
	}
	select {
	case err := <-bad:
		is.fail(ctx, err)
		return
	default:
	}
	switch {
	case runCtx.Err() != nil:
		return // the client left
	case runErr != nil:
		is.fail(ctx, runErr)
		return
	}
	if err := is.send(ctx, resultMsg(res)); err != nil {
		return
	}
	is.conn.Close(websocket.StatusNormalClosure, "")
}

// readRequest reads the first message: the submission.
func (is *interactiveSession) readRequest(ctx context.Context) (interactiveRequest, error) {
	var req interactiveRequest
	is.conn.SetReadLimit(maxCodeBody)
	rctx, cancel := context.WithTimeout(ctx, interactiveFirstWait)
	defer cancel()
	typ, data, err := is.conn.Read(rctx)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return req, fmt.Errorf("%w: no submission message within %s", errBadRequest, interactiveFirstWait)
		}
		return req, err
	}
	if typ != websocket.MessageText {
		return req, fmt.Errorf("%w: the first message must be the submission as JSON text", errBadRequest)
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return req, fmt.Errorf("%w: malformed submission message: %v", errBadRequest, err)
	}
	return req, nil
}

// checkInteractive checks a submission and resolves its limits.
func (s *Server) checkInteractive(req interactiveRequest) (*lang.Language, limits.Limits, error) {
	l, ok := lang.Lookup(req.Language)
	if !ok {
		return nil, limits.Limits{}, fmt.Errorf("%w: unknown language %q", errBadRequest, req.Language)
	}
	lim := limits.Defaults()
	if present(req.Limits) {
		var err error
		if lim, err = judge.ParseLimits(req.Limits, lim); err != nil {
			return nil, lim, fmt.Errorf("%w: limits: %v", errBadRequest, err)
		}
	}
	max := s.cfg.MaxLimits
	if max == (limits.Limits{}) {
		max = limits.Maximums()
	}
	return l, lim, lim.Validate(max)
}

// forward sends a stream's bytes as they come, as text messages; an
// incomplete UTF-8 sequence at a chunk's end waits for the next chunk.
func (is *interactiveSession) forward(ctx context.Context, stream string, r io.Reader) {
	buf := make([]byte, 32<<10)
	var held []byte
	for {
		n, err := r.Read(buf)
		chunk := append(held, buf[:n]...)
		held = nil
		if err == nil {
			if cut := incompleteTail(chunk); cut > 0 {
				held = append([]byte(nil), chunk[len(chunk)-cut:]...)
				chunk = chunk[:len(chunk)-cut]
			}
		}
		if len(chunk) > 0 {
			m := interactiveMsg{Type: stream}
			if utf8.Valid(chunk) {
				m.Data = string(chunk)
			} else {
				m.DataBase64 = base64.StdEncoding.EncodeToString(chunk)
			}
			if is.send(ctx, m) != nil {
				return // the relay is closed for reading by serve
			}
		}
		if err != nil {
			return
		}
	}
}

// incompleteTail is the length of a UTF-8 sequence b ends with that more
// bytes could complete (0 if none).
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: complete
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

func (is *interactiveSession) send(ctx context.Context, m interactiveMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return is.conn.Write(ctx, websocket.MessageText, b)
}

// fail sends an error message and closes the connection: 1008 (policy
// violation) for the client's mistakes, 1011 for the daemon's.
func (is *interactiveSession) fail(ctx context.Context, err error) {
	if websocket.CloseStatus(err) != -1 || errors.Is(err, context.Canceled) {
		return // the client closed or left
	}
	status := statusOf(err)
	code := websocket.StatusPolicyViolation
	if status >= 500 {
		is.s.log.Error("interactive run failed", "err", err)
		code = websocket.StatusInternalError
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	is.send(wctx, interactiveMsg{Type: "error", Error: err.Error(), Code: status})
	reason := err.Error()
	if len(reason) > 120 {
		reason = reason[:120]
	}
	is.conn.Close(code, reason)
}

func compileMsg(c *lang.CompileReport) interactiveMsg {
	m := interactiveMsg{Type: "compile", Status: "OK"}
	if c != nil {
		ms := float64(c.Duration.Microseconds()) / 1000
		m.Status, m.Stdout, m.Stderr, m.TimeMS, m.Cached = c.Status, c.Stdout, c.Stderr, &ms, &c.Cached
	}
	return m
}

func resultMsg(res *sbrt.Result) interactiveMsg {
	cpu, wall := float64(res.CPU.Microseconds())/1000, float64(res.Wall.Microseconds())/1000
	verdict := "OK"
	if res.Status != sbrt.StatusOK {
		verdict = judge.Verdict(res, nil, judge.Exact{})
	}
	return interactiveMsg{
		Type: "result", Status: string(res.Status), Verdict: verdict, ExitCode: &res.ExitCode,
		TimeMS: &cpu, WallMS: &wall, MemoryBytes: &res.PeakMemory,
		StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated,
	}
}
