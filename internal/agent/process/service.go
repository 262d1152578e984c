// Package process is the agent's process service: the envd-compatible
// process.Process Connect service (api/proto/process) that starts, lists,
// streams, feeds, signals and resizes processes.
//
// Processes outlive the RPC that started them: output is kept in a bounded
// history per process, so a client that re-attaches with Connect (by pid or
// tag) gets what it missed, and an ended process stays connectable for a
// while. A Service is safe for concurrent use.
package process

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// Config configures a Service.
type Config struct {
	Env         []string // base environment (KEY=VALUE) of every process
	Dir         string   // working directory when the request names none
	OutputLimit int      // bytes of output history kept per process
	// OutputBudget bounds the output history of all processes together
	// (bytes); when it is reached, a process writing output loses its
	// oldest history first.
	OutputBudget int
	KeepAlive    time.Duration // interval of keepalive events on streams
	Linger       time.Duration // how long an ended process stays connectable
	// User maps a user name (from the request's Basic authorization,
	// "user" by default) to the credentials and home directory a process
	// runs with. Nil runs every process as the agent's own user in Dir.
	User func(name string) (User, error)
	// Waiter starts and reaps processes; nil means DirectWaiter.
	Waiter Waiter
	Logger *slog.Logger
}

// User is who a process runs as.
type User struct {
	Cred *syscall.Credential
	Home string // default working directory and $HOME
}

// Service implements processconnect.ProcessHandler.
type Service struct {
	cfg   Config
	mu    sync.Mutex
	procs map[uint32]*proc
	env   []string // set by SetEnv: added to (and overriding) cfg.Env
	// outputs is the budget every process's output history draws on.
	outputs *budget
}

var _ processconnect.ProcessHandler = (*Service)(nil)

// DefaultOutputBudget is the default total of output history kept for all
// processes together.
const DefaultOutputBudget = 16 << 20

// DefaultUser is the user processes run as when a request names none.
const DefaultUser = "user"

// New returns a Service; zero fields of cfg get defaults.
func New(cfg Config) *Service {
	if cfg.OutputLimit <= 0 {
		cfg.OutputLimit = 4 << 20
	}
	if cfg.OutputBudget <= 0 {
		cfg.OutputBudget = DefaultOutputBudget
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 50 * time.Second
	}
	if cfg.Linger <= 0 {
		cfg.Linger = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Waiter == nil {
		cfg.Waiter = DirectWaiter{}
	}
	return &Service{cfg: cfg, procs: map[uint32]*proc{}, outputs: &budget{max: int64(cfg.OutputBudget)}}
}

// Handler returns the HTTP path prefix and handler serving the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return processconnect.NewProcessHandler(s, opts...)
}

// userFrom reads the user name the E2B SDKs send as "Basic base64(user:)".
func userFrom(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return DefaultUser, nil
	}
	enc, ok := strings.CutPrefix(v, "Basic ")
	if !ok {
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("authorization must be Basic with a user name"))
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("authorization is not valid base64"))
	}
	user, _, _ := strings.Cut(string(raw), ":")
	if user == "" {
		return DefaultUser, nil
	}
	return user, nil
}

// KeepAliveHeader is the request header in which the E2B SDKs ask for
// keepalive events every so many seconds on a stream.
const KeepAliveHeader = "Keepalive-Ping-Interval"

// keepAliveFor is the keepalive interval a stream's client asks for in
// KeepAliveHeader (whole seconds, at least one), else dflt. A longer
// interval than dflt is not granted: proxies on the way may cut streams
// idle for longer.
func keepAliveFor(h http.Header, dflt time.Duration) time.Duration {
	n, err := strconv.Atoi(h.Get(KeepAliveHeader))
	if err != nil || n < 1 {
		return dflt
	}
	return min(time.Duration(n)*time.Second, dflt)
}

// Start starts a process and streams its events until it ends or the
// client goes away. The process outlives its stream: a deadline on the
// request (Connect-Timeout-Ms, which the SDKs set from a command's
// timeout) ends the stream with deadline_exceeded and the process keeps
// running, reachable with Connect and killable with SendSignal.
func (s *Service) Start(ctx context.Context, req *connect.Request[pb.StartRequest], stream *connect.ServerStream[pb.StartResponse]) error {
	p, err := s.start(req)
	if err != nil {
		return err
	}
	return s.follow(ctx, p, keepAliveFor(req.Header(), s.cfg.KeepAlive), func(ev *pb.ProcessEvent) error {
		return stream.Send(&pb.StartResponse{Event: ev})
	})
}

func (s *Service) start(req *connect.Request[pb.StartRequest]) (*proc, error) {
	m := req.Msg
	if m.GetProcess().GetCmd() == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process.cmd is required"))
	}
	if m.GetPty() != nil {
		if err := checkSize(m.GetPty().GetSize()); err != nil {
			return nil, err
		}
	}
	user, err := userFrom(req.Header())
	if err != nil {
		return nil, err
	}
	u := User{Home: s.cfg.Dir}
	if s.cfg.User != nil {
		if u, err = s.cfg.User(user); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("user %q: %w", user, err))
		}
	}
	env := s.baseEnv()
	if u.Home != "" {
		env = append(env, "HOME="+u.Home)
	}
	for k, v := range m.GetProcess().GetEnvs() {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("invalid environment variable %q", k))
		}
		env = append(env, k+"="+v)
	}
	dir := u.Home
	if m.GetProcess().Cwd != nil {
		dir = m.GetProcess().GetCwd()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Tag != nil {
		for _, other := range s.procs {
			if other.hasTag && other.tag == m.GetTag() && other.running() {
				return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a process with tag %q is running", m.GetTag()))
			}
		}
	}
	p, err := spawn(s.cfg.Waiter, m, env, dir, u.Cred, newOutput(s.cfg.OutputLimit, s.outputs))
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("start %s: %w", m.GetProcess().GetCmd(), err))
	}
	s.procs[p.pid] = p
	go func() {
		<-p.done
		time.AfterFunc(s.cfg.Linger, func() {
			s.mu.Lock()
			if s.procs[p.pid] == p {
				delete(s.procs, p.pid)
			}
			p.out.release()
			s.mu.Unlock()
		})
	}()
	s.cfg.Logger.Info("process started", "pid", p.pid, "cmd", m.GetProcess().GetCmd(), "user", user)
	return p, nil
}

// Connect re-attaches to a process: its start event, the output history
// still kept, then live output and the end.
func (s *Service) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest], stream *connect.ServerStream[pb.ConnectResponse]) error {
	p, err := s.find(req.Msg.GetProcess())
	if err != nil {
		return err
	}
	return s.follow(ctx, p, keepAliveFor(req.Header(), s.cfg.KeepAlive), func(ev *pb.ProcessEvent) error {
		return stream.Send(&pb.ConnectResponse{Event: ev})
	})
}

// follow sends the start event, output from the start of the kept history,
// keepalives while idle, and the end event.
func (s *Service) follow(ctx context.Context, p *proc, every time.Duration, send func(*pb.ProcessEvent) error) error {
	if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Start{Start: &pb.ProcessEvent_StartEvent{Pid: p.pid}}}); err != nil {
		return err
	}
	keepalive := time.NewTicker(every)
	defer keepalive.Stop()
	var seq int64
	for {
		chunks, next, more, done := p.out.read(seq)
		seq = next
		for _, c := range chunks {
			if err := send(dataEvent(c)); err != nil {
				return err
			}
		}
		if done {
			return send(&pb.ProcessEvent{Event: &pb.ProcessEvent_End{End: p.end}})
		}
		select {
		case <-more:
		case <-keepalive.C:
			if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Keepalive{Keepalive: &pb.ProcessEvent_KeepAlive{}}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func dataEvent(c chunk) *pb.ProcessEvent {
	d := &pb.ProcessEvent_DataEvent{}
	switch c.stream {
	case streamStdout:
		d.Output = &pb.ProcessEvent_DataEvent_Stdout{Stdout: c.data}
	case streamStderr:
		d.Output = &pb.ProcessEvent_DataEvent_Stderr{Stderr: c.data}
	default:
		d.Output = &pb.ProcessEvent_DataEvent_Pty{Pty: c.data}
	}
	return &pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: d}}
}

func (s *Service) find(sel *pb.ProcessSelector) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := sel.GetSelector().(type) {
	case *pb.ProcessSelector_Pid:
		if p, ok := s.procs[v.Pid]; ok {
			return p, nil
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d not found", v.Pid))
	case *pb.ProcessSelector_Tag:
		var found *proc
		for _, p := range s.procs {
			// Prefer the running process with the tag over ended ones.
			if p.hasTag && p.tag == v.Tag && (found == nil || p.running()) {
				found = p
			}
		}
		if found != nil {
			return found, nil
		}
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with tag %q not found", v.Tag))
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process selector (pid or tag) is required"))
	}
}

// findRunning is find for operations on a live process (input, signals,
// resizing): an ended process is kept only for Connect, and to the rest
// it is gone, as in envd, so the SDKs' kill reports false for it.
func (s *Service) findRunning(sel *pb.ProcessSelector) (*proc, error) {
	p, err := s.find(sel)
	if err != nil {
		return nil, err
	}
	if !p.running() {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d has ended", p.pid))
	}
	return p, nil
}

// List returns the running processes.
func (s *Service) List(context.Context, *connect.Request[pb.ListRequest]) (*connect.Response[pb.ListResponse], error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &pb.ListResponse{}
	for _, p := range s.procs {
		if p.running() {
			res.Processes = append(res.Processes, p.info())
		}
	}
	return connect.NewResponse(res), nil
}

// SendInput writes to a process's stdin or terminal.
func (s *Service) SendInput(_ context.Context, req *connect.Request[pb.SendInputRequest]) (*connect.Response[pb.SendInputResponse], error) {
	p, err := s.findRunning(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.write(req.Msg.GetInput()); err != nil {
		return nil, inputError(err)
	}
	return connect.NewResponse(&pb.SendInputResponse{}), nil
}

// StreamInput writes a client stream of input, in order, to one process.
func (s *Service) StreamInput(_ context.Context, stream *connect.ClientStream[pb.StreamInputRequest]) (*connect.Response[pb.StreamInputResponse], error) {
	var p *proc
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *pb.StreamInputRequest_Start:
			found, err := s.findRunning(ev.Start.GetProcess())
			if err != nil {
				return nil, err
			}
			p = found
		case *pb.StreamInputRequest_Data:
			if p == nil {
				return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the first message must select the process"))
			}
			if err := p.write(ev.Data.GetInput()); err != nil {
				return nil, inputError(err)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.StreamInputResponse{}), nil
}

func inputError(err error) error {
	if errors.Is(err, errNoStdin) || errors.Is(err, errNotPTY) || errors.Is(err, errIsPTY) {
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}

// CloseStdin closes a piped process's stdin (EOF for the program).
func (s *Service) CloseStdin(_ context.Context, req *connect.Request[pb.CloseStdinRequest]) (*connect.Response[pb.CloseStdinResponse], error) {
	p, err := s.findRunning(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.closeStdin(); err != nil {
		return nil, inputError(err)
	}
	return connect.NewResponse(&pb.CloseStdinResponse{}), nil
}

// SendSignal sends SIGTERM or SIGKILL to the process's session.
func (s *Service) SendSignal(_ context.Context, req *connect.Request[pb.SendSignalRequest]) (*connect.Response[pb.SendSignalResponse], error) {
	var sig syscall.Signal
	switch req.Msg.GetSignal() {
	case pb.Signal_SIGNAL_SIGTERM:
		sig = syscall.SIGTERM
	case pb.Signal_SIGNAL_SIGKILL:
		sig = syscall.SIGKILL
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("signal must be SIGTERM or SIGKILL"))
	}
	p, err := s.findRunning(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if err := p.signal(sig); err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&pb.SendSignalResponse{}), nil
}

// Update resizes a process's terminal.
func (s *Service) Update(_ context.Context, req *connect.Request[pb.UpdateRequest]) (*connect.Response[pb.UpdateResponse], error) {
	p, err := s.findRunning(req.Msg.GetProcess())
	if err != nil {
		return nil, err
	}
	if size := req.Msg.GetPty().GetSize(); size != nil {
		if err := checkSize(size); err != nil {
			return nil, err
		}
		if err := p.resize(size); err != nil {
			return nil, inputError(err)
		}
	}
	return connect.NewResponse(&pb.UpdateResponse{}), nil
}

func checkSize(size *pb.PTY_Size) error {
	if size.GetRows() == 0 || size.GetCols() == 0 || size.GetRows() > 4096 || size.GetCols() > 4096 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("pty size must be between 1x1 and 4096x4096"))
	}
	return nil
}
