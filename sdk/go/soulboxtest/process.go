package soulboxtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

type processService struct {
	processconnect.UnimplementedProcessHandler
	f *FakeServer
}

var _ processconnect.ProcessHandler = (*processService)(nil)

const (
	sigTerm = pb.Signal_SIGNAL_SIGTERM
	sigKill = pb.Signal_SIGNAL_SIGKILL
)

// proc is a toy process.
type proc struct {
	pid     uint32
	tag     *string
	cfg     *pb.ProcessConfig
	user    string
	env     map[string]string
	isPTY   bool
	hasIn   bool
	input   chan []byte // stdin or terminal input; closed by CloseStdin
	signals chan pb.Signal

	mu       sync.Mutex
	out      []*pb.ProcessEvent // data events, all kept
	end      *pb.ProcessEvent_EndEvent
	changed  chan struct{} // closed and replaced on every change
	inClosed bool
	size     *pb.PTY_Size
}

func (p *proc) emit(ev *pb.ProcessEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.GetEnd() != nil {
		p.end = ev.GetEnd()
	} else {
		p.out = append(p.out, ev)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *proc) stdout(b []byte) {
	p.emit(&pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: &pb.ProcessEvent_DataEvent{Output: &pb.ProcessEvent_DataEvent_Stdout{Stdout: b}}}})
}

func (p *proc) stderr(b []byte) {
	p.emit(&pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: &pb.ProcessEvent_DataEvent{Output: &pb.ProcessEvent_DataEvent_Stderr{Stderr: b}}}})
}

func (p *proc) ptyOut(b []byte) {
	p.emit(&pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: &pb.ProcessEvent_DataEvent{Output: &pb.ProcessEvent_DataEvent_Pty{Pty: b}}}})
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end == nil
}

func (p *proc) signal(sig pb.Signal) {
	select {
	case p.signals <- sig:
	default:
	}
}

func (s *processService) record(req connect.AnyRequest) {
	msg, _ := req.Any().(proto.Message)
	s.f.record(Request{Method: "POST", Path: req.Spec().Procedure, Header: req.Header().Clone(), Msg: msg})
}

func (s *sandbox) find(sel *pb.ProcessSelector) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := sel.GetSelector().(type) {
	case *pb.ProcessSelector_Pid:
		if p := s.procs[v.Pid]; p != nil {
			return p, nil
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d not found", v.Pid))
	case *pb.ProcessSelector_Tag:
		for _, p := range s.procs {
			if p.tag != nil && *p.tag == v.Tag {
				return p, nil
			}
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with tag %q not found", v.Tag))
	}
	return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process selector (pid or tag) is required"))
}

func (s *processService) Start(ctx context.Context, req *connect.Request[pb.StartRequest], stream *connect.ServerStream[pb.StartResponse]) error {
	s.record(req)
	sb := sandboxFrom(ctx)
	user, err := userFrom(req.Header())
	if err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	m := req.Msg
	if m.GetProcess().GetCmd() == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("process.cmd is required"))
	}
	if size := m.GetPty().GetSize(); m.GetPty() != nil && (size.GetCols() == 0 || size.GetRows() == 0) {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("pty size must be at least 1x1"))
	}
	env := map[string]string{}
	sb.mu.Lock()
	for k, v := range sb.env {
		env[k] = v
	}
	sb.mu.Unlock()
	for k, v := range m.GetProcess().GetEnvs() {
		env[k] = v
	}
	p := &proc{
		tag: m.Tag, cfg: m.GetProcess(), user: user, env: env, isPTY: m.GetPty() != nil,
		hasIn: m.Stdin == nil || m.GetStdin() || m.GetPty() != nil,
		input: make(chan []byte, 64), signals: make(chan pb.Signal, 4), changed: make(chan struct{}),
		size: m.GetPty().GetSize(),
	}
	sb.mu.Lock()
	if p.tag != nil {
		for _, other := range sb.procs {
			if other.tag != nil && *other.tag == *p.tag && other.running() {
				sb.mu.Unlock()
				return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a process with tag %q is running", *p.tag))
			}
		}
	}
	sb.nextPID++
	p.pid = sb.nextPID
	sb.procs[p.pid] = p
	sb.mu.Unlock()
	go func() {
		end := p.run(s.f.ctx)
		p.emit(&pb.ProcessEvent{Event: &pb.ProcessEvent_End{End: end}})
		time.AfterFunc(time.Minute, func() {
			sb.mu.Lock()
			delete(sb.procs, p.pid)
			sb.mu.Unlock()
		})
	}()
	return s.follow(ctx, p, func(ev *pb.ProcessEvent) error { return stream.Send(&pb.StartResponse{Event: ev}) })
}

// follow sends the start event, a keepalive, all output so far, then live
// output and the end.
func (s *processService) follow(ctx context.Context, p *proc, send func(*pb.ProcessEvent) error) error {
	if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Start{Start: &pb.ProcessEvent_StartEvent{Pid: p.pid}}}); err != nil {
		return err
	}
	if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Keepalive{Keepalive: &pb.ProcessEvent_KeepAlive{}}}); err != nil {
		return err
	}
	next := 0
	for {
		p.mu.Lock()
		events := p.out[next:]
		next = len(p.out)
		end, changed := p.end, p.changed
		p.mu.Unlock()
		for _, ev := range events {
			if err := send(ev); err != nil {
				return err
			}
		}
		if end != nil {
			return send(&pb.ProcessEvent{Event: &pb.ProcessEvent_End{End: end}})
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.f.ctx.Done():
			return connect.NewError(connect.CodeUnavailable, errors.New("fake server closing"))
		}
	}
}

func (s *processService) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest], stream *connect.ServerStream[pb.ConnectResponse]) error {
	s.record(req)
	p, err := sandboxFrom(ctx).find(req.Msg.GetProcess())
	if err != nil {
		return err
	}
	return s.follow(ctx, p, func(ev *pb.ProcessEvent) error { return stream.Send(&pb.ConnectResponse{Event: ev}) })
}

func (s *processService) List(ctx context.Context, req *connect.Request[pb.ListRequest]) (*connect.Response[pb.ListResponse], error) {
	s.record(req)
	sb := sandboxFrom(ctx)
	sb.mu.Lock()
	var procs []*proc
	for _, p := range sb.procs {
		procs = append(procs, p)
	}
	sb.mu.Unlock()
	res := &pb.ListResponse{}
	for _, p := range procs {
		if p.running() {
			res.Processes = append(res.Processes, &pb.ProcessInfo{Config: p.cfg, Pid: p.pid, Tag: p.tag})
		}
	}
	return connect.NewResponse(res), nil
}

func (s *processService) SendInput(ctx context.Context, req *connect.Request[pb.SendInputRequest]) (*connect.Response[pb.SendInputResponse], error) {
	s.record(req)
	p, err := sandboxFrom(ctx).find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	var data []byte
	switch in := req.Msg.GetInput().GetInput().(type) {
	case *pb.ProcessInput_Stdin:
		if p.isPTY {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("process has a terminal: send pty input"))
		}
		data = in.Stdin
	case *pb.ProcessInput_Pty:
		if !p.isPTY {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("process has no terminal"))
		}
		data = in.Pty
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("input is required"))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.hasIn || p.inClosed || p.end != nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("stdin is closed"))
	}
	select {
	case p.input <- append([]byte(nil), data...):
	default:
		return nil, connect.NewError(connect.CodeResourceExhausted, errors.New("input queue full"))
	}
	return connect.NewResponse(&pb.SendInputResponse{}), nil
}

func (s *processService) CloseStdin(ctx context.Context, req *connect.Request[pb.CloseStdinRequest]) (*connect.Response[pb.CloseStdinResponse], error) {
	s.record(req)
	p, err := sandboxFrom(ctx).find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isPTY || !p.hasIn {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("process has no stdin pipe"))
	}
	if !p.inClosed {
		p.inClosed = true
		close(p.input)
	}
	return connect.NewResponse(&pb.CloseStdinResponse{}), nil
}

func (s *processService) SendSignal(ctx context.Context, req *connect.Request[pb.SendSignalRequest]) (*connect.Response[pb.SendSignalResponse], error) {
	s.record(req)
	p, err := sandboxFrom(ctx).find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	switch sig := req.Msg.GetSignal(); sig {
	case sigTerm, sigKill:
		p.signal(sig)
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("signal must be SIGTERM or SIGKILL"))
	}
	return connect.NewResponse(&pb.SendSignalResponse{}), nil
}

func (s *processService) Update(ctx context.Context, req *connect.Request[pb.UpdateRequest]) (*connect.Response[pb.UpdateResponse], error) {
	s.record(req)
	p, err := sandboxFrom(ctx).find(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if size := req.Msg.GetPty().GetSize(); size != nil {
		if !p.isPTY {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("process has no terminal"))
		}
		if size.GetCols() == 0 || size.GetRows() == 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("pty size must be at least 1x1"))
		}
		p.mu.Lock()
		p.size = size
		p.mu.Unlock()
	}
	return connect.NewResponse(&pb.UpdateResponse{}), nil
}

// --- the toy interpreter -------------------------------------------------

// errSignalled ends a toy program that received a signal.
type errSignalled struct{ sig pb.Signal }

func (e errSignalled) Error() string { return "signalled" }

func (p *proc) run(ctx context.Context) *pb.ProcessEvent_EndEvent {
	code, err := p.program(ctx)
	var sig errSignalled
	switch {
	case errors.As(err, &sig):
		name := "killed"
		if sig.sig == sigTerm {
			name = "terminated"
		}
		return &pb.ProcessEvent_EndEvent{ExitCode: -1, Status: "signal: " + name}
	case err != nil:
		return &pb.ProcessEvent_EndEvent{ExitCode: -1, Status: "error", Error: proto.String(err.Error())}
	}
	return &pb.ProcessEvent_EndEvent{ExitCode: int32(code), Exited: true, Status: fmt.Sprintf("exit status %d", code)}
}

func (p *proc) program(ctx context.Context) (int, error) {
	if p.isPTY {
		return p.interactive(ctx)
	}
	args := p.cfg.GetArgs()
	var script string
	if (p.cfg.GetCmd() == "/bin/bash" || p.cfg.GetCmd() == "bash") && len(args) >= 2 && args[len(args)-2] == "-c" {
		script = args[len(args)-1]
	} else {
		script = strings.Join(append([]string{p.cfg.GetCmd()}, quoteAll(args)...), " ")
	}
	code := 0
	for _, stmt := range strings.Split(script, ";") {
		words := split(stmt)
		if len(words) == 0 {
			continue
		}
		var exit bool
		var err error
		code, exit, err = p.statement(ctx, words, p.stdout, p.stderr)
		if err != nil || exit {
			return code, err
		}
	}
	return code, nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + a + "'"
	}
	return out
}

// split splits a statement into words, honouring single and double quotes.
func split(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// statement runs one toy command; exit reports an "exit" statement.
func (p *proc) statement(ctx context.Context, w []string, stdout, stderr func([]byte)) (code int, exit bool, err error) {
	select {
	case sig := <-p.signals:
		return 0, false, errSignalled{sig}
	default:
	}
	switch w[0] {
	case "echo":
		args := w[1:]
		out := stdout
		if len(args) > 0 && args[len(args)-1] == ">&2" {
			args, out = args[:len(args)-1], stderr
		}
		out([]byte(strings.Join(args, " ") + "\n"))
	case "exit":
		if len(w) > 1 {
			n, err := strconv.Atoi(w[1])
			if err != nil {
				stderr([]byte("toy: exit: numeric argument required\n"))
				return 2, true, nil
			}
			return n, true, nil
		}
		return 0, true, nil
	case "true":
	case "false":
		return 1, false, nil
	case "pwd":
		cwd := p.cfg.GetCwd()
		if p.cfg.Cwd == nil {
			cwd = home(p.user)
		}
		stdout([]byte(cwd + "\n"))
	case "whoami":
		stdout([]byte(p.user + "\n"))
	case "printenv":
		if len(w) < 2 {
			return 1, false, nil
		}
		v, ok := p.env[w[1]]
		if !ok {
			return 1, false, nil
		}
		stdout([]byte(v + "\n"))
	case "sleep":
		secs, err := strconv.ParseFloat(strings.Join(w[1:], ""), 64)
		if err != nil || secs < 0 {
			stderr([]byte("toy: sleep: invalid time interval\n"))
			return 1, false, nil
		}
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
		case sig := <-p.signals:
			return 0, false, errSignalled{sig}
		case <-ctx.Done():
			return 0, false, errSignalled{sigKill}
		}
	case "cat":
		if !p.hasIn {
			return 0, false, nil
		}
		for {
			select {
			case b, ok := <-p.input:
				if !ok {
					return 0, false, nil
				}
				stdout(b)
			case sig := <-p.signals:
				return 0, false, errSignalled{sig}
			case <-ctx.Done():
				return 0, false, errSignalled{sigKill}
			}
		}
	default:
		stderr([]byte("toy: " + w[0] + ": command not found\n"))
		return 127, false, nil
	}
	return 0, false, nil
}

// interactive is the toy on a terminal: echo input, run each line.
func (p *proc) interactive(ctx context.Context) (int, error) {
	out := func(b []byte) { p.ptyOut([]byte(strings.ReplaceAll(string(b), "\n", "\r\n"))) }
	out([]byte("$ "))
	var line []byte
	for {
		select {
		case b, ok := <-p.input:
			if !ok {
				return 0, nil
			}
			for _, c := range b {
				if c != '\r' && c != '\n' {
					line = append(line, c)
					p.ptyOut([]byte{c})
					continue
				}
				out([]byte("\n"))
				words := split(string(line))
				line = line[:0]
				if len(words) > 0 {
					code, exit, err := p.statement(ctx, words, out, out)
					if err != nil || exit {
						return code, err
					}
				}
				out([]byte("$ "))
			}
		case sig := <-p.signals:
			return 0, errSignalled{sig}
		case <-ctx.Done():
			return 0, errSignalled{sigKill}
		}
	}
}
