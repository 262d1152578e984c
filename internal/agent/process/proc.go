package process

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/execpath"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

// drainGrace is how long output is still followed after the process
// exits: a daemonised grandchild that keeps the pipe open does not hold
// the end event back longer than this. Whatever is in the pipe when it
// runs out is still read (see stopReading): a busy host that delays the
// readers loses no output. A variable for tests.
var drainGrace = 200 * time.Millisecond

// proc is one process started by the service.
type proc struct {
	pid    uint32
	tag    string
	hasTag bool
	config *pb.ProcessConfig
	cmd    *exec.Cmd
	tty    *os.File // PTY master, nil for pipes
	out    *output
	done   chan struct{} // closed once end is set
	end    *pb.ProcessEvent_EndEvent

	readEnds []*os.File // output read ends, closed after the drain grace

	inMu  sync.Mutex
	stdin *os.File // nil when there is no (more) stdin
}

// spawn starts the process described by req.
func spawn(w Waiter, req *pb.StartRequest, env []string, dir string, cred *syscall.Credential, out *output) (*proc, error) {
	cfg := req.GetProcess()
	path, err := execpath.Look(cfg.GetCmd(), env)
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: path, Args: append([]string{cfg.GetCmd()}, cfg.GetArgs()...)}
	cmd.Env = env
	cmd.Dir = dir
	p := &proc{config: cfg, cmd: cmd, out: out, done: make(chan struct{})}
	if req.Tag != nil {
		p.tag, p.hasTag = req.GetTag(), true
	}
	attr := &syscall.SysProcAttr{Setsid: true, Credential: cred}
	var readers []func()
	var wait func() syscall.WaitStatus
	if req.GetPty() != nil {
		size := req.GetPty().GetSize()
		var tty *os.File
		var err error
		wait, err = w.Launch(func() (int, error) {
			// pty.StartWithAttrs makes the terminal the session's controlling tty.
			tty, err = pty.StartWithAttrs(cmd, &pty.Winsize{Rows: uint16(size.GetRows()), Cols: uint16(size.GetCols())}, attr)
			if err != nil {
				return 0, err
			}
			return cmd.Process.Pid, deprioritize(cmd.Process.Pid)
		})
		if err != nil {
			closeAll(tty)
			return nil, err
		}
		p.tty = tty
		p.readEnds = []*os.File{tty}
		readers = append(readers, func() { p.copyOut(tty, streamPTY) })
	} else {
		cmd.SysProcAttr = attr
		stdoutR, stdoutW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		stderrR, stderrW, err := os.Pipe()
		if err != nil {
			closeAll(stdoutR, stdoutW)
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = stdoutW, stderrW
		var stdinR *os.File
		if req.Stdin == nil || req.GetStdin() {
			if stdinR, p.stdin, err = os.Pipe(); err != nil {
				closeAll(stdoutR, stdoutW, stderrR, stderrW)
				return nil, err
			}
			cmd.Stdin = stdinR
		}
		wait, err = w.Launch(func() (int, error) {
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			return cmd.Process.Pid, deprioritize(cmd.Process.Pid)
		})
		closeAll(stdoutW, stderrW, stdinR)
		if err != nil {
			closeAll(stdoutR, stderrR, p.stdin)
			return nil, err
		}
		p.readEnds = []*os.File{stdoutR, stderrR}
		readers = append(readers, func() { p.copyOut(stdoutR, streamStdout) }, func() { p.copyOut(stderrR, streamStderr) })
	}
	p.pid = uint32(cmd.Process.Pid)
	// The Waiter reaps the process; os/exec's handle is not needed.
	cmd.Process.Release()
	go p.wait(wait, readers)
	return p, nil
}

// deprioritize makes a started child the OOM killer's first choice; if
// that fails, the child is killed: it does not run as a process the
// kernel might spare over the agent.
func deprioritize(pid int) error {
	if err := raiseOOMScoreAdj(pid); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		return err
	}
	return nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// copyOut moves output into the history until EOF, or until stopReading
// ends it after the process ended; then it takes what the pipe still
// holds.
func (p *proc) copyOut(r *os.File, s stream) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.out.append(s, buf[:n])
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.takePending(r, s, buf)
			return
		}
		if err != nil {
			return
		}
	}
}

// stopReading ends copyOut on r: a read deadline in the past wakes the
// blocked read, and copyOut then empties the pipe without waiting. A
// file that takes no deadline is closed instead.
func stopReading(r *os.File) {
	if r.SetReadDeadline(time.Now()) != nil {
		r.Close()
	}
}

// takePending reads what r holds right now, without waiting for more,
// up to the history's budget (a writer that never stops cannot keep the
// agent here).
func (p *proc) takePending(r *os.File, s stream, buf []byte) {
	rc, err := r.SyscallConn()
	if err != nil || r.SetReadDeadline(time.Time{}) != nil {
		return
	}
	left := p.out.max
	rc.Read(func(fd uintptr) bool {
		for left > 0 {
			n, err := unix.Read(int(fd), buf)
			if n <= 0 || err != nil {
				break
			}
			p.out.append(s, buf[:n])
			left -= n
		}
		return true
	})
}

// wait reaps the process, lets the readers drain, and records the end.
func (p *proc) wait(wait func() syscall.WaitStatus, readers []func()) {
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Add(1)
		go func() { defer wg.Done(); r() }()
	}
	ws := wait()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
		for _, r := range p.readEnds {
			stopReading(r)
		}
		<-drained
	}
	closeAll(p.readEnds...)
	p.inMu.Lock()
	closeAll(p.stdin)
	p.stdin = nil
	p.inMu.Unlock()

	p.end = endEvent(ws)
	close(p.done)
	p.out.close()
}

// endEvent describes a wait status the way os.ProcessState does
// ("exit status 3", "signal: killed"), as envd reports it.
func endEvent(ws syscall.WaitStatus) *pb.ProcessEvent_EndEvent {
	switch {
	case ws.Exited():
		return &pb.ProcessEvent_EndEvent{ExitCode: int32(ws.ExitStatus()), Exited: true, Status: fmt.Sprintf("exit status %d", ws.ExitStatus())}
	case ws.Signaled():
		return &pb.ProcessEvent_EndEvent{ExitCode: -1, Status: "signal: " + ws.Signal().String()}
	default:
		return &pb.ProcessEvent_EndEvent{ExitCode: -1, Status: fmt.Sprintf("unknown wait status %#x", uint32(ws))}
	}
}

// running reports whether the process has not ended yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// errNoStdin is returned for input to a process whose stdin is closed.
var errNoStdin = errors.New("the process's stdin is closed or was not requested")

// errNotPTY is returned for terminal operations on a piped process.
var errNotPTY = errors.New("the process has no terminal")

// errIsPTY is returned for pipe operations on a terminal process.
var errIsPTY = errors.New("the process runs in a terminal: send Ctrl-D (0x04) instead")

func (p *proc) write(in *pb.ProcessInput) error {
	switch {
	case in.GetPty() != nil:
		if p.tty == nil {
			return errNotPTY
		}
		_, err := p.tty.Write(in.GetPty())
		return err
	default:
		if p.tty != nil {
			return fmt.Errorf("stdin input to a terminal process: %w", errIsPTY)
		}
		p.inMu.Lock()
		defer p.inMu.Unlock()
		if p.stdin == nil {
			return errNoStdin
		}
		_, err := p.stdin.Write(in.GetStdin())
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe) {
			return errNoStdin
		}
		return err
	}
}

func (p *proc) closeStdin() error {
	if p.tty != nil {
		return errIsPTY
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	if p.stdin == nil {
		return errNoStdin
	}
	err := p.stdin.Close()
	p.stdin = nil
	return err
}

func (p *proc) resize(size *pb.PTY_Size) error {
	if p.tty == nil {
		return errNotPTY
	}
	return pty.Setsize(p.tty, &pty.Winsize{Rows: uint16(size.GetRows()), Cols: uint16(size.GetCols())})
}

// signal signals the process's whole session (it is a session leader).
func (p *proc) signal(sig syscall.Signal) error {
	if !p.running() {
		return nil
	}
	err := syscall.Kill(-int(p.pid), sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func (p *proc) info() *pb.ProcessInfo {
	info := &pb.ProcessInfo{Config: p.config, Pid: p.pid}
	if p.hasTag {
		info.Tag = &p.tag
	}
	return info
}
