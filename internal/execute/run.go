package execute

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

// procSpec is one process to run through the agent.
type procSpec struct {
	argv    []string
	env     map[string]string
	cwd     string
	stdin   []byte // nil: no stdin pipe
	timeout time.Duration
	// out receives each chunk of output; returning false kills the
	// process (an output cap).
	out func(stderr bool, b []byte) bool
}

// procEnd is how a process ended.
type procEnd struct {
	exitCode int
	exited   bool
	status   string // e.g. "exit status 3", "signal: killed"
	timedOut bool
	capped   bool // killed because out returned false
	wall     time.Duration
}

// run starts a process as User and follows it to its end. The process is
// killed when ctx ends, when the timeout passes or when out refuses more.
func (a *Agent) run(ctx context.Context, s procSpec) (*procEnd, error) {
	stdin := s.stdin != nil
	cfg := &pb.ProcessConfig{Cmd: s.argv[0], Args: s.argv[1:], Envs: s.env}
	if s.cwd != "" {
		cfg.Cwd = &s.cwd
	}
	// The stream lives until the process ends; our own deadline kills the
	// process rather than cutting the stream.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	t0 := time.Now()
	stream, err := a.Procs.Start(sctx, asUser(connect.NewRequest(&pb.StartRequest{Process: cfg, Stdin: &stdin})))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.argv[0], err)
	}
	defer stream.Close()
	if !stream.Receive() || stream.Msg().GetEvent().GetStart() == nil {
		return nil, fmt.Errorf("start %s: %w", s.argv[0], errors.Join(errors.New("no start event"), stream.Err()))
	}
	pid := stream.Msg().GetEvent().GetStart().GetPid()
	end := &procEnd{}
	var timedOut, capped atomic.Bool
	if s.timeout > 0 {
		t := time.AfterFunc(s.timeout, func() { timedOut.Store(true); a.kill(ctx, pid) })
		defer t.Stop()
	}
	stop := context.AfterFunc(ctx, func() { a.kill(ctx, pid) })
	defer stop()
	if stdin {
		sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
		go func() {
			for off := 0; off < len(s.stdin); off += 1 << 20 {
				chunk := s.stdin[off:min(off+1<<20, len(s.stdin))]
				in := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: chunk}}
				if _, err := a.Procs.SendInput(sctx, asUser(connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: in}))); err != nil {
					return
				}
			}
			_, _ = a.Procs.CloseStdin(sctx, asUser(connect.NewRequest(&pb.CloseStdinRequest{Process: sel})))
		}()
	}
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil && s.out != nil && !capped.Load() {
			ok := true
			if b := d.GetStdout(); len(b) > 0 {
				ok = s.out(false, b)
			}
			if b := d.GetStderr(); len(b) > 0 && ok {
				ok = s.out(true, b)
			}
			if !ok {
				capped.Store(true)
				a.kill(ctx, pid)
			}
		}
		if e := ev.GetEnd(); e != nil {
			end.exitCode, end.exited, end.status = int(e.GetExitCode()), e.GetExited(), e.GetStatus()
			end.wall = time.Since(t0)
			end.timedOut, end.capped = timedOut.Load(), capped.Load()
			return end, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: the process stream ended without an end event: %w", s.argv[0], stream.Err())
}
