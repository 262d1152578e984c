package runpool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/result"
)

// Run asks the daemon using dataDir to run req in one of its ready
// sandboxes, feeding stdin and, when req.Stream, passing output to stdout
// and stderr as it comes. It returns ErrCold when there is no daemon or
// none of its sandboxes can take the run: the caller then sets up its own.
// An error wrapping ErrInvalid is a request the daemon refused.
//
// The client is the whole cost of a pooled run beyond the run itself
// (`soulbox run` is a fresh process each time), so it does little: the
// request is encoded without reflection and sent as one datagram, and
// one goroutine does everything — waiting for the daemon in Go's poller
// (where the waiting process has no thread awake) and, while stdin has
// data for the pipe, polling stdin, the pipe and the connection itself.
func Run(ctx context.Context, dataDir string, req Request, stdin io.Reader, stdout, stderr io.Writer) (*result.Result, error) {
	body := AppendRequest(make([]byte, 0, 512), req)
	var pfd [2]int
	if err := unix.Pipe2(pfd[:], unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	c := client{pipe: pfd[1], stdout: stdout, stderr: stderr}
	defer c.closePipe()
	// Non-blocking: this end waits in Go's poller (the daemon's end is
	// in its poller too).
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		unix.Close(pfd[0])
		return nil, err
	}
	// One datagram carries the request, the pipe's read end and the
	// daemon's end of the connection: the daemon wakes once, with all of
	// it (a stream socket woke it at connect, before the request).
	err = send(SocketPath(dataDir), body, unix.UnixRights(pfd[0], pair[1]))
	unix.Close(pfd[0])
	unix.Close(pair[1])
	fd := pair[0]
	if err != nil {
		unix.Close(fd)
		return nil, ErrCold // no daemon (or not ours to use), or a request too large for it
	}
	c.fd, c.sock = fd, os.NewFile(uintptr(fd), "run pool")
	defer c.sock.Close()
	c.conn, _ = c.sock.SyscallConn() // an *os.File's never fails
	// Interrupted: shut the connection down, which wakes the loop below
	// and tells the daemon to end the run.
	shut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
		close(shut)
	})
	defer func() {
		if !stop() {
			<-shut
		}
	}()
	res, err := c.loop(stdin)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("run interrupted: %w", context.Cause(ctx))
	}
	return res, err
}

// send sends one datagram with descriptors to the socket at path.
func send(path string, b, oob []byte) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return retry(func() error { return unix.Sendmsg(fd, b, oob, &unix.SockaddrUnix{Name: path}, 0) })
}

// retry calls fn until it is not interrupted by a signal.
func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// client is one run's connection: frames from the daemon in, stdin out
// into the pipe once the daemon has accepted the run.
type client struct {
	sock *os.File
	conn syscall.RawConn // sock's
	// fd is sock's descriptor, for poll: valid until Run closes sock
	// (an interruption only shuts the connection down).
	fd             int
	pipe           int // the stdin pipe's write end, -1 once closed
	stdout, stderr io.Writer
	in             []byte // received, not yet a whole frame
}

// stdinChunk is how much of stdin is read at a time.
const stdinChunk = 64 << 10

// loop reads frames until the last one. Once the run is accepted it also
// feeds stdin: from a file, by polling it, the socket and the pipe in this
// goroutine; from any other reader, in a goroutine of its own.
func (c *client) loop(stdin io.Reader) (*result.Result, error) {
	in := -1       // stdin's descriptor while feeding it here
	var buf []byte // read from stdin, not yet in the pipe
	for {
		if kind, p, ok, err := c.frame(); err != nil {
			return nil, err
		} else if ok {
			switch kind {
			case FrameAccept:
				// Only now: a cold answer leaves stdin unread for our own run.
				if in = c.startFeeding(stdin); in >= 0 {
					buf = make([]byte, 0, stdinChunk)
				}
			case FrameStdout:
				c.stdout.Write(p)
			case FrameStderr:
				c.stderr.Write(p)
			case FrameCold:
				return nil, ErrCold
			case FrameError:
				return nil, fmt.Errorf("%w: %s", ErrInvalid, p)
			case FrameFailed:
				return nil, fmt.Errorf("sandbox failed: %s", p)
			case FrameResult:
				res, err := ParseResult(p)
				if err != nil {
					return nil, fmt.Errorf("run pool: %w", err)
				}
				return res, nil
			default:
				return nil, errors.New("run pool: unexpected frame")
			}
			continue
		}
		if in < 0 {
			if err := c.receive(); err != nil { // waits in the poller
				return nil, err
			}
			continue
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		if len(buf) == 0 {
			fds = append(fds, unix.PollFd{Fd: int32(in), Events: unix.POLLIN})
		} else {
			fds = append(fds, unix.PollFd{Fd: int32(c.pipe), Events: unix.POLLOUT})
		}
		if err := retry(func() error { _, err := unix.Poll(fds, -1); return err }); err != nil {
			return nil, fmt.Errorf("run pool: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			in, buf = c.pass(in, buf)
		}
		if fds[0].Revents != 0 {
			if err := c.receive(); err != nil {
				return nil, err
			}
		}
	}
}

// pass moves stdin one step on, once poll said it can: a read from in
// when buf is empty, else a write of buf into the pipe. It returns -1 for
// in once stdin is done: at its end, unreadable, or the pipe's reader
// gone (EPIPE once the program is done is expected).
func (c *client) pass(in int, buf []byte) (int, []byte) {
	var (
		n   int
		err error
	)
	if len(buf) == 0 {
		if n, err = unix.Read(in, buf[:cap(buf)]); n > 0 {
			return in, buf[:n]
		}
	} else if n, err = unix.Write(c.pipe, buf); n > 0 {
		return in, buf[:copy(buf, buf[n:])]
	}
	if err == unix.EINTR || err == unix.EAGAIN {
		return in, buf
	}
	return c.closePipe(), buf
}

// startFeeding returns stdin's descriptor when the loop is to feed it,
// or -1 when there is nothing to feed or a goroutine feeds it.
func (c *client) startFeeding(stdin io.Reader) int {
	switch f := stdin.(type) {
	case nil:
	case *os.File:
		// The pipe's write end only (a pipe's ends are separate open
		// files): a full pipe must not block the loop. Stdin's mode is
		// left as it is (reads tolerate EAGAIN).
		if rc, err := f.SyscallConn(); err == nil && unix.SetNonblock(c.pipe, true) == nil {
			fd := -1
			if rc.Control(func(d uintptr) { fd = int(d) }) == nil && fd >= 0 {
				return fd
			}
		}
	default:
		w := os.NewFile(uintptr(c.pipe), "stdin")
		c.pipe = -1
		go func() {
			defer w.Close()
			io.Copy(w, stdin) // EPIPE once the program is done is expected
		}()
		return -1
	}
	c.closePipe()
	return -1
}

func (c *client) closePipe() int {
	if c.pipe >= 0 {
		unix.Close(c.pipe)
		c.pipe = -1
	}
	return -1
}

// receive reads what the socket has, waiting in the poller for it.
func (c *client) receive() error {
	if cap(c.in)-len(c.in) < 32<<10 {
		c.in = slices.Grow(c.in, 64<<10)
	}
	var (
		n   int
		err error
	)
	if perr := c.conn.Read(func(fd uintptr) bool {
		n, err = unix.Read(int(fd), c.in[len(c.in):cap(c.in)])
		return err != unix.EAGAIN
	}); perr != nil {
		err = perr
	}
	switch {
	case err == unix.EINTR || err == unix.EAGAIN:
		return nil
	case err != nil:
		return fmt.Errorf("run pool: %w", err)
	case n == 0:
		return fmt.Errorf("run pool: %w", io.ErrUnexpectedEOF)
	}
	c.in = c.in[:len(c.in)+n]
	return nil
}

// frame takes the next whole frame from what was received (ok false when
// there is none yet).
func (c *client) frame() (kind byte, p []byte, ok bool, err error) {
	if len(c.in) < 5 {
		return 0, nil, false, nil
	}
	n := binary.BigEndian.Uint32(c.in[1:5])
	if n > maxFrame {
		return 0, nil, false, fmt.Errorf("run pool: frame of %d bytes", n)
	}
	if uint32(len(c.in)-5) < n {
		c.in = slices.Grow(c.in, 5+int(n)-len(c.in)) // room for the whole frame
		return 0, nil, false, nil
	}
	kind = c.in[0]
	p = append([]byte(nil), c.in[5:5+n]...)
	c.in = c.in[:copy(c.in, c.in[5+n:])]
	return kind, p, true, nil
}
