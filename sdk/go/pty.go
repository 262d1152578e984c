package soulbox

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// PTY starts interactive terminals in a sandbox. Get it from Sandbox.PTY;
// it is safe for concurrent use.
type PTY struct {
	sbx *Sandbox
	rpc processconnect.ProcessClient
}

// PTYOptions describe a terminal session. Every field is optional.
type PTYOptions struct {
	Cols, Rows uint16            // terminal size; 80x24 when zero
	Cmd        []string          // program and arguments; "/bin/bash -i -l" when empty
	Env        map[string]string // extra environment; TERM defaults to xterm-256color
	Cwd        string            // working directory; the user's home when empty
	User       string            // sandbox user; DefaultUser when empty
	Timeout    time.Duration     // kill the session after this long; zero for no limit
	OnData     func([]byte)      // terminal output, called in order on one goroutine
}

// PTYHandle is a running terminal session. It is safe for concurrent use.
type PTYHandle struct {
	h *CommandHandle
}

// Create starts a program on a new pseudo-terminal. ctx bounds the output
// stream, as for Commands.Start.
func (p *PTY) Create(ctx context.Context, opts PTYOptions) (*PTYHandle, error) {
	cols, rows := opts.Cols, opts.Rows
	if cols == 0 {
		cols = 80
	}
	if rows == 0 {
		rows = 24
	}
	argv := opts.Cmd
	if len(argv) == 0 {
		argv = []string{"/bin/bash", "-i", "-l"}
	}
	env := map[string]string{"TERM": "xterm-256color", "LANG": "C.UTF-8"}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg := newCommandConfig([]CommandOption{WithTimeout(opts.Timeout), WithoutCapture()})
	if opts.User != "" {
		cfg.user = opts.User
	}
	cfg.onPTY = opts.OnData
	var cwd *string
	if opts.Cwd != "" {
		cwd = &opts.Cwd
	}
	stdin := true
	req := &pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: argv[0], Args: argv[1:], Envs: env, Cwd: cwd},
		Pty:     &pb.PTY{Size: &pb.PTY_Size{Cols: uint32(cols), Rows: uint32(rows)}},
		Stdin:   &stdin,
	}
	h, err := p.sbx.Commands.start(ctx, cfg, req)
	if err != nil {
		return nil, err
	}
	return &PTYHandle{h: h}, nil
}

// PID is the process id of the terminal's program.
func (t *PTYHandle) PID() uint32 { return t.h.PID() }

// SendInput types data into the terminal.
func (t *PTYHandle) SendInput(ctx context.Context, data []byte) error {
	return t.h.cmds.sendInput(ctx, t.h.pid, &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: data}}, t.h.user)
}

// Resize changes the terminal's size.
func (t *PTYHandle) Resize(ctx context.Context, cols, rows uint16) error {
	if cols == 0 || rows == 0 {
		return fmt.Errorf("%w: terminal size %dx%d", ErrInvalid, cols, rows)
	}
	req := withUser(connect.NewRequest(&pb.UpdateRequest{
		Process: selectPID(t.h.pid),
		Pty:     &pb.PTY{Size: &pb.PTY_Size{Cols: uint32(cols), Rows: uint32(rows)}},
	}), t.h.user)
	_, err := t.h.cmds.rpc.Update(ctx, req)
	return rpcError(err)
}

// Wait waits for the program to end, as CommandHandle.Wait (the result
// carries no output: it went to OnData).
func (t *PTYHandle) Wait(ctx context.Context) (*CommandResult, error) { return t.h.Wait(ctx) }

// Done is closed when the handle stops following the terminal.
func (t *PTYHandle) Done() <-chan struct{} { return t.h.Done() }

// Kill sends SIGKILL to the terminal's program.
func (t *PTYHandle) Kill(ctx context.Context) error { return t.h.Kill(ctx) }

// Disconnect stops following the terminal without ending it.
func (t *PTYHandle) Disconnect() { t.h.Disconnect() }
