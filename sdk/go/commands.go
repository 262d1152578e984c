package soulbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// DefaultCommandTimeout bounds Commands.Run and Commands.Start unless
// WithTimeout says otherwise, as in E2B's SDKs.
const DefaultCommandTimeout = 60 * time.Second

// killGrace bounds the kill sent when a command's timeout passes.
const killGrace = 10 * time.Second

// Commands starts and controls processes in a sandbox. Get it from
// Sandbox.Commands; it is safe for concurrent use.
type Commands struct {
	sbx *Sandbox
	rpc processconnect.ProcessClient
}

// CommandResult is what a finished command printed and how it ended.
type CommandResult struct {
	Stdout   string // empty with WithoutCapture
	Stderr   string // empty with WithoutCapture
	ExitCode int    // -1 when a signal ended the command
	Error    string // the agent's description of an abnormal end, if any
}

// Signal is a signal that can be sent to a sandbox process.
type Signal int

// The signals the agent accepts.
const (
	SIGTERM Signal = 15
	SIGKILL Signal = 9
)

// CommandOption configures Commands.Run, Start, StartArgv and Connect.
type CommandOption func(*commandConfig)

type commandConfig struct {
	env       map[string]string
	cwd       *string
	user      string
	timeout   time.Duration
	stdin     bool
	tag       *string
	onStdout  func([]byte)
	onStderr  func([]byte)
	onPTY     func([]byte)
	noCapture bool
}

func newCommandConfig(opts []CommandOption) commandConfig {
	cfg := commandConfig{timeout: DefaultCommandTimeout, user: DefaultUser}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithEnv adds environment variables for the command.
func WithEnv(env map[string]string) CommandOption {
	return func(c *commandConfig) { c.env = env }
}

// WithCwd sets the command's working directory (default: the user's home).
func WithCwd(dir string) CommandOption {
	return func(c *commandConfig) { c.cwd = &dir }
}

// WithUser sets the sandbox user the command runs as (default "user").
func WithUser(user string) CommandOption {
	return func(c *commandConfig) { c.user = user }
}

// WithTimeout kills the command if it still runs d after it started; the
// call then fails with ErrTimeout. Zero means no limit. The default is
// DefaultCommandTimeout.
func WithTimeout(d time.Duration) CommandOption {
	return func(c *commandConfig) { c.timeout = d }
}

// WithStdin keeps the command's standard input open for
// CommandHandle.SendStdin; without it stdin is empty.
func WithStdin() CommandOption {
	return func(c *commandConfig) { c.stdin = true }
}

// WithTag names the process, so Commands.ConnectTag can find it again.
func WithTag(tag string) CommandOption {
	return func(c *commandConfig) { c.tag = &tag }
}

// WithOnStdout calls fn with each piece of standard output as it arrives.
// Callbacks run one at a time on one goroutine, in order; fn must not
// keep the slice nor block for long.
func WithOnStdout(fn func([]byte)) CommandOption {
	return func(c *commandConfig) { c.onStdout = fn }
}

// WithOnStderr is WithOnStdout for standard error.
func WithOnStderr(fn func([]byte)) CommandOption {
	return func(c *commandConfig) { c.onStderr = fn }
}

// WithoutCapture stops the handle from keeping the output for
// CommandResult (use it with the callbacks for large or endless output).
func WithoutCapture() CommandOption {
	return func(c *commandConfig) { c.noCapture = true }
}

// Run runs cmd with "/bin/bash -l -c cmd" and waits for it to end. A
// non-zero exit returns the result together with a *CommandExitError.
func (c *Commands) Run(ctx context.Context, cmd string, opts ...CommandOption) (*CommandResult, error) {
	h, err := c.Start(ctx, cmd, opts...)
	if err != nil {
		return nil, err
	}
	return h.Wait(ctx)
}

// Start starts cmd with "/bin/bash -l -c cmd" and returns once it runs.
// ctx bounds the event stream: cancelling it stops the handle from
// following the process, which keeps running in the sandbox (use Kill).
func (c *Commands) Start(ctx context.Context, cmd string, opts ...CommandOption) (*CommandHandle, error) {
	return c.StartArgv(ctx, []string{"/bin/bash", "-l", "-c", cmd}, opts...)
}

// StartArgv is Start without a shell: argv[0] is looked up in the
// sandbox's PATH and gets argv[1:] as its arguments.
func (c *Commands) StartArgv(ctx context.Context, argv []string, opts ...CommandOption) (*CommandHandle, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: empty command", ErrInvalid)
	}
	cfg := newCommandConfig(opts)
	stdin := cfg.stdin
	req := &pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: argv[0], Args: argv[1:], Envs: cfg.env, Cwd: cfg.cwd},
		Tag:     cfg.tag,
		Stdin:   &stdin,
	}
	return c.start(ctx, cfg, req)
}

func (c *Commands) start(ctx context.Context, cfg commandConfig, req *pb.StartRequest) (*CommandHandle, error) {
	if cfg.timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout", ErrInvalid)
	}
	sctx, cancel := context.WithCancel(ctx)
	r := withUser(connect.NewRequest(req), cfg.user)
	r.Header().Set(headerKeepalive, keepaliveSeconds)
	stream, err := c.rpc.Start(sctx, r)
	if err != nil {
		cancel()
		return nil, rpcError(err)
	}
	return c.follow(ctx, cancel, cfg, stream, func() *pb.ProcessEvent { return stream.Msg().GetEvent() })
}

// Connect re-attaches to a running process by pid: the handle replays the
// output the agent still keeps and follows the rest. Options other than
// the callbacks, WithUser, WithTimeout and WithoutCapture are ignored;
// the timeout here only bounds following, it does not kill.
func (c *Commands) Connect(ctx context.Context, pid uint32, opts ...CommandOption) (*CommandHandle, error) {
	return c.connect(ctx, &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}, opts)
}

// ConnectTag is Connect by the tag given with WithTag.
func (c *Commands) ConnectTag(ctx context.Context, tag string, opts ...CommandOption) (*CommandHandle, error) {
	return c.connect(ctx, &pb.ProcessSelector{Selector: &pb.ProcessSelector_Tag{Tag: tag}}, opts)
}

func (c *Commands) connect(ctx context.Context, sel *pb.ProcessSelector, opts []CommandOption) (*CommandHandle, error) {
	cfg := newCommandConfig(append([]CommandOption{WithTimeout(0)}, opts...))
	if cfg.timeout < 0 {
		return nil, fmt.Errorf("%w: negative timeout", ErrInvalid)
	}
	var sctx context.Context
	var cancel context.CancelFunc
	if cfg.timeout > 0 {
		sctx, cancel = context.WithTimeout(ctx, cfg.timeout)
		cfg.timeout = 0 // following ends at the deadline; nothing is killed
	} else {
		sctx, cancel = context.WithCancel(ctx)
	}
	r := withUser(connect.NewRequest(&pb.ConnectRequest{Process: sel}), cfg.user)
	r.Header().Set(headerKeepalive, keepaliveSeconds)
	stream, err := c.rpc.Connect(sctx, r)
	if err != nil {
		cancel()
		return nil, rpcError(err)
	}
	return c.follow(ctx, cancel, cfg, stream, func() *pb.ProcessEvent { return stream.Msg().GetEvent() })
}

// eventStream is what Start and Connect streams have in common.
type eventStream interface {
	Receive() bool
	Err() error
	Close() error
}

// follow reads the start event, then pumps the rest of the stream on a
// goroutine into the handle.
func (c *Commands) follow(ctx context.Context, cancel context.CancelFunc, cfg commandConfig, stream eventStream, event func() *pb.ProcessEvent) (*CommandHandle, error) {
	h := &CommandHandle{cmds: c, user: cfg.user, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	var first *pb.ProcessEvent
	for first == nil {
		if !stream.Receive() {
			err := stream.Err()
			stream.Close()
			cancel()
			if err == nil {
				err = errors.New("process stream ended before the process started")
			}
			return nil, rpcError(err)
		}
		ev := event()
		if ev.GetKeepalive() != nil {
			continue
		}
		first = ev
	}
	if st := first.GetStart(); st != nil {
		h.pid = st.GetPid()
	} else {
		h.handle(first)
	}
	if cfg.timeout > 0 {
		h.timer = time.AfterFunc(cfg.timeout, func() { h.expire(context.WithoutCancel(ctx)) })
	}
	go h.pump(stream, event)
	return h, nil
}

// CommandHandle is a started (or re-attached) process. Its output is
// delivered to the callbacks as it arrives, whether or not anybody waits.
// It is safe for concurrent use.
type CommandHandle struct {
	cmds   *Commands
	pid    uint32
	user   string
	cfg    commandConfig
	cancel context.CancelFunc
	timer  *time.Timer

	done           chan struct{} // closed when the stream is finished
	stdout, stderr bytes.Buffer  // written only by pump before done
	end            *pb.ProcessEvent_EndEvent
	streamErr      error

	mu       sync.Mutex
	timedOut bool
}

// PID is the process id in the sandbox.
func (h *CommandHandle) PID() uint32 { return h.pid }

func (h *CommandHandle) pump(stream eventStream, event func() *pb.ProcessEvent) {
	defer close(h.done)
	defer h.cancel()
	defer stream.Close()
	for stream.Receive() {
		if h.handle(event()) {
			return
		}
	}
	h.streamErr = stream.Err()
}

// handle dispatches one event and reports whether it was the end.
func (h *CommandHandle) handle(ev *pb.ProcessEvent) bool {
	switch {
	case ev.GetData() != nil:
		d := ev.GetData()
		switch out := d.GetOutput().(type) {
		case *pb.ProcessEvent_DataEvent_Stdout:
			if !h.cfg.noCapture {
				h.stdout.Write(out.Stdout)
			}
			if h.cfg.onStdout != nil {
				h.cfg.onStdout(out.Stdout)
			}
		case *pb.ProcessEvent_DataEvent_Stderr:
			if !h.cfg.noCapture {
				h.stderr.Write(out.Stderr)
			}
			if h.cfg.onStderr != nil {
				h.cfg.onStderr(out.Stderr)
			}
		case *pb.ProcessEvent_DataEvent_Pty:
			if h.cfg.onPTY != nil {
				h.cfg.onPTY(out.Pty)
			}
		}
	case ev.GetEnd() != nil:
		h.end = ev.GetEnd()
		return true
	case ev.GetStart() != nil && h.pid == 0:
		h.pid = ev.GetStart().GetPid()
	}
	return false
}

// expire kills the process when its timeout passes.
func (h *CommandHandle) expire(ctx context.Context) {
	select {
	case <-h.done:
		return
	default:
	}
	h.mu.Lock()
	h.timedOut = true
	h.mu.Unlock()
	kctx, cancel := context.WithTimeout(ctx, killGrace)
	defer cancel()
	_ = h.Kill(kctx) // the stream is ended below either way
	select {
	case <-h.done:
	case <-kctx.Done():
	}
	h.cancel()
}

// Wait waits until the process ends and returns its result. A non-zero
// exit returns the result together with a *CommandExitError. If ctx ends
// first, Wait returns ctx's error and the process keeps running. Wait may
// be called any number of times.
func (h *CommandHandle) Wait(ctx context.Context) (*CommandResult, error) {
	select {
	case <-h.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if h.timer != nil {
		h.timer.Stop()
	}
	res := &CommandResult{Stdout: h.stdout.String(), Stderr: h.stderr.String(), ExitCode: -1}
	h.mu.Lock()
	timedOut := h.timedOut
	h.mu.Unlock()
	if h.end == nil {
		if timedOut {
			return res, fmt.Errorf("process %d killed after %s: %w", h.pid, h.cfg.timeout, ErrTimeout)
		}
		if h.streamErr != nil {
			return res, fmt.Errorf("process %d: %w", h.pid, rpcError(h.streamErr))
		}
		return res, fmt.Errorf("process %d: %w", h.pid, errNoStream)
	}
	res.ExitCode = int(h.end.GetExitCode())
	res.Error = h.end.GetError()
	if res.Error == "" && !h.end.GetExited() {
		res.Error = h.end.GetStatus()
	}
	if timedOut {
		return res, fmt.Errorf("process %d killed after %s: %w", h.pid, h.cfg.timeout, ErrTimeout)
	}
	if res.ExitCode != 0 {
		return res, &CommandExitError{Result: res}
	}
	return res, nil
}

// Done is closed when the handle stops following the process.
func (h *CommandHandle) Done() <-chan struct{} { return h.done }

// Disconnect stops following the process without stopping it; Wait then
// returns an error. Commands.Connect can re-attach.
func (h *CommandHandle) Disconnect() { h.cancel() }

// Kill sends SIGKILL to the process.
func (h *CommandHandle) Kill(ctx context.Context) error { return h.Signal(ctx, SIGKILL) }

// Signal sends sig to the process.
func (h *CommandHandle) Signal(ctx context.Context, sig Signal) error {
	return h.cmds.signal(ctx, h.pid, sig, h.user)
}

// SendStdin writes data to the process's standard input (started
// WithStdin).
func (h *CommandHandle) SendStdin(ctx context.Context, data []byte) error {
	return h.cmds.sendInput(ctx, h.pid, &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: data}}, h.user)
}

// CloseStdin closes the process's standard input: it reads end of file.
func (h *CommandHandle) CloseStdin(ctx context.Context) error {
	return h.cmds.closeStdin(ctx, h.pid, h.user)
}

func selectPID(pid uint32) *pb.ProcessSelector {
	return &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
}

func (c *Commands) signal(ctx context.Context, pid uint32, sig Signal, user string) error {
	if sig != SIGTERM && sig != SIGKILL {
		return fmt.Errorf("%w: signal %d (only SIGTERM and SIGKILL)", ErrInvalid, sig)
	}
	req := withUser(connect.NewRequest(&pb.SendSignalRequest{Process: selectPID(pid), Signal: pb.Signal(sig)}), user)
	_, err := c.rpc.SendSignal(ctx, req)
	return rpcError(err)
}

func (c *Commands) sendInput(ctx context.Context, pid uint32, in *pb.ProcessInput, user string) error {
	req := withUser(connect.NewRequest(&pb.SendInputRequest{Process: selectPID(pid), Input: in}), user)
	_, err := c.rpc.SendInput(ctx, req)
	return rpcError(err)
}

func (c *Commands) closeStdin(ctx context.Context, pid uint32, user string) error {
	req := withUser(connect.NewRequest(&pb.CloseStdinRequest{Process: selectPID(pid)}), user)
	_, err := c.rpc.CloseStdin(ctx, req)
	return rpcError(err)
}

// Kill sends SIGKILL to the process pid.
func (c *Commands) Kill(ctx context.Context, pid uint32) error {
	return c.signal(ctx, pid, SIGKILL, DefaultUser)
}

// Signal sends sig to the process pid.
func (c *Commands) Signal(ctx context.Context, pid uint32, sig Signal) error {
	return c.signal(ctx, pid, sig, DefaultUser)
}

// SendStdin writes data to the standard input of the process pid.
func (c *Commands) SendStdin(ctx context.Context, pid uint32, data []byte) error {
	return c.sendInput(ctx, pid, &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: data}}, DefaultUser)
}

// CloseStdin closes the standard input of the process pid.
func (c *Commands) CloseStdin(ctx context.Context, pid uint32) error {
	return c.closeStdin(ctx, pid, DefaultUser)
}

// ProcessInfo describes a running process.
type ProcessInfo struct {
	PID  uint32
	Tag  string // empty when started without WithTag
	Cmd  string
	Args []string
	Env  map[string]string // the variables given at start, not the whole environment
	Cwd  string            // empty when the default was used
}

// List returns the processes the sandbox's agent started that still run.
func (c *Commands) List(ctx context.Context) ([]ProcessInfo, error) {
	resp, err := c.rpc.List(ctx, withUser(connect.NewRequest(&pb.ListRequest{}), DefaultUser))
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]ProcessInfo, 0, len(resp.Msg.GetProcesses()))
	for _, p := range resp.Msg.GetProcesses() {
		out = append(out, ProcessInfo{
			PID:  p.GetPid(),
			Tag:  p.GetTag(),
			Cmd:  p.GetConfig().GetCmd(),
			Args: p.GetConfig().GetArgs(),
			Env:  p.GetConfig().GetEnvs(),
			Cwd:  p.GetConfig().GetCwd(),
		})
	}
	return out, nil
}
