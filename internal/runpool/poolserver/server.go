// Package poolserver is the daemon's side of the run pool (see
// internal/runpool): worker sandboxes kept ready for `soulbox run`.
package poolserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/runpool"
	"github.com/soulbox-dev/soulbox/internal/runtime"
)

// fillers is how many sandboxes are set up at once to refill the pool.
const fillers = 2

// writeTimeout bounds each write to a client that does not read.
const writeTimeout = 30 * time.Second

// Server keeps up to size worker sandboxes ready and runs `soulbox run`
// requests in them. A sandbox serves up to reuse runs: after a run that
// ended by itself, the worker's clean-up (every process killed, every
// writable directory emptied, System V IPC checked, the cgroup's counters
// and limits reset; see runtime.Worker) makes it ready for the next; a run
// ended by a limit or a kill, or a failed clean-up, retires it.
type Server struct {
	rt    *runtime.Runtime
	spec  runtime.WorkerSpec
	log   *slog.Logger
	reuse int
	ready chan *pooled
	// slots holds one token per live sandbox (ready, running or being
	// set up): fillers set up a new one only when one has retired, so a
	// reused sandbox never competes with a needless set-up.
	slots  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	// healthy is set while setting up sandboxes succeeds.
	healthy atomic.Bool
	wg      sync.WaitGroup
	conns   sync.WaitGroup
}

// pooled is a ready sandbox and how many runs it has served.
type pooled struct {
	w    *runtime.Worker
	runs int
}

// NewServer starts filling a pool of size sandboxes with the default run
// limits of `soulbox run`, each serving up to reuse runs (1: a fresh
// sandbox for every run).
func NewServer(rt *runtime.Runtime, size, reuse int, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{rt: rt, spec: runtime.WorkerSpec{Limits: limits.Defaults()}, log: log, reuse: max(reuse, 1),
		ready: make(chan *pooled, size), slots: make(chan struct{}, size), ctx: ctx, cancel: cancel}
	s.healthy.Store(true) // until a set-up fails
	for range min(fillers, size) {
		s.wg.Add(1)
		go s.fill()
	}
	return s
}

// fill sets up sandboxes as long as the pool has room.
func (s *Server) fill() {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		w, err := s.rt.NewWorker(s.ctx, s.spec)
		if err != nil {
			<-s.slots
		}
		if errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid) || errors.Is(err, runtime.ErrWorkerUnsupported) {
			s.healthy.Store(false)
			s.log.Error("run pool disabled", "err", err)
			return
		}
		if err != nil {
			s.healthy.Store(false)
			if s.ctx.Err() == nil {
				s.log.Error("run pool: set up a sandbox", "err", err)
			}
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		s.healthy.Store(true)
		s.ready <- &pooled{w: w} // room: one slot per live sandbox
	}
}

// retire destroys a sandbox and frees its slot for a new one.
func (s *Server) retire(p *pooled) {
	p.w.Close()
	<-s.slots
}

// release takes a sandbox back after a run: ready again once its clean-up
// succeeds, unless it has served its runs, the run ended it, or the
// server is closing.
func (s *Server) release(p *pooled) {
	p.runs++
	if p.runs >= s.reuse || s.ctx.Err() != nil {
		s.retire(p)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := p.w.WaitReady(ctx); err != nil {
		s.retire(p)
		return
	}
	s.ready <- p
}

// maxWait bounds how long a request waits for a sandbox being set up.
const maxWait = 2 * time.Second

// take returns a ready sandbox or, when none is and the pool is filling
// normally, the next one set up (it is never slower than the client
// setting up its own, which would also compete for the CPU); nil if the
// pool is failing or too slow.
func (s *Server) take() *pooled {
	select {
	case p := <-s.ready:
		return p
	default:
	}
	if !s.healthy.Load() {
		return nil
	}
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case p := <-s.ready:
		return p
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return nil
	}
}

// Listen creates the socket in dataDir (for root only) and serves it
// until Close.
func (s *Server) Listen(dataDir string) error {
	p := runpool.SocketPath(dataDir)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run pool socket: %w", err)
	}
	// Left by a daemon of an earlier release: no client of this one reads
	// it, and a socket that stays does no harm.
	if err := os.Remove(filepath.Join(dataDir, runpool.FirstSocketName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("run pool: remove the earlier release's socket", "err", err)
	}
	// Not through the umask: it is the process's, and sandboxes started
	// meanwhile would inherit it. Requests are checked (their sender's
	// credentials) from the first one on.
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("run pool socket: %w", err)
	}
	if err := passCredentials(ln); err != nil {
		ln.Close()
		return fmt.Errorf("run pool socket: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("run pool socket: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		ln.Close()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, runpool.MaxRequest+1)
		oob := make([]byte, unix.CmsgSpace(2*4)+unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, flags, _, err := ln.ReadMsgUnix(buf, oob)
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn("run pool: receive", "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c, req, stdin, err := readRequest(buf[:n], oob[:oobn], flags)
			if c == nil {
				continue // no connection to answer on
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				s.serve(c, req, stdin, err)
			}()
		}
	}()
	return nil
}

// passCredentials has the kernel attach each request's sender's
// credentials (SCM_CREDENTIALS).
func passCredentials(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// Close stops serving, waits for runs in flight, and destroys the ready
// sandboxes.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
	s.conns.Wait()
	for {
		select {
		case p := <-s.ready:
			s.retire(p)
		default:
			return
		}
	}
}

// errNotRoot refuses a request from anyone but root: the socket is for
// `soulbox run`, which needs root anyway (the client's own set-up then
// reports what it lacks).
var errNotRoot = errors.New("not root")

// serve answers one request on its connection.
func (s *Server) serve(c *net.UnixConn, req runpool.Request, stdin *os.File, err error) {
	defer c.Close()
	fw := &frameWriter{c: c}
	switch {
	case err == errNotRoot:
		fw.write(runpool.FrameCold, nil)
		return
	case err != nil:
		fw.write(runpool.FrameError, []byte(err.Error()))
		return
	}
	defer stdin.Close()
	p := s.take()
	if p == nil {
		fw.write(runpool.FrameCold, nil)
		return
	}
	w := p.w
	if !w.Fits(req.Limits) {
		// Other disk or /dev/shm sizes, larger limits than a ready
		// sandbox has, or beyond this daemon's maximums (which the
		// client's own set-up may allow).
		// Put it back for a request that fits.
		s.ready <- p
		fw.write(runpool.FrameCold, nil)
		return
	}
	// After the answer, so the client is not kept waiting for the
	// clean-up.
	defer s.release(p)
	// From here on the client feeds stdin, so it cannot take the run back.
	if fw.write(runpool.FrameAccept, nil) != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		// The client closes the connection when it is interrupted.
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()
	spec := runtime.Spec{Argv: req.Argv, Env: req.Env, Limits: req.Limits, Stdin: stdin}
	if req.Stream {
		spec.Stdout = &streamWriter{fw: fw, kind: runpool.FrameStdout, cancel: cancel}
		spec.Stderr = &streamWriter{fw: fw, kind: runpool.FrameStderr, cancel: cancel}
	}
	res, err := w.Run(ctx, spec)
	switch {
	case err == nil:
		if req.Stream {
			res.Stdout, res.Stderr = nil, nil // already sent
		}
		fw.write(runpool.FrameResult, runpool.AppendResult(nil, res))
	case ctx.Err() != nil:
		// The client is gone.
	case errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid):
		fw.write(runpool.FrameError, []byte(err.Error()))
	default:
		s.log.Warn("run pool: run failed", "err", err)
		fw.write(runpool.FrameFailed, []byte(err.Error()))
	}
}

// readRequest takes a request datagram apart: the request (see
// runpool.AppendRequest), its sender's credentials and two descriptors,
// the stdin pipe's read end and the client's end of a stream socket for
// the answer. c is nil when no answer can be given; otherwise err says
// why the request is refused.
func readRequest(b, oob []byte, flags int) (c *net.UnixConn, req runpool.Request, stdin *os.File, err error) {
	var fds []int
	var cred *unix.Ucred
	// (Received close-on-exec: ReadMsgUnix asks for MSG_CMSG_CLOEXEC.)
	msgs, perr := unix.ParseSocketControlMessage(oob)
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		} else if uc, err := unix.ParseUnixCredentials(&m); err == nil {
			cred = uc
		}
	}
	if perr != nil || len(fds) != 2 || flags&unix.MSG_CTRUNC != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, req, nil, errors.New("malformed request")
	}
	// The answer's connection: a Unix stream socket.
	var uc *net.UnixConn
	if typ, err := unix.GetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_TYPE); err == nil && typ == unix.SOCK_STREAM {
		f := os.NewFile(uintptr(fds[1]), "run pool client")
		conn, _ := net.FileConn(f) // a duplicate
		f.Close()
		if uc, _ = conn.(*net.UnixConn); uc == nil && conn != nil {
			conn.Close()
		}
	} else {
		unix.Close(fds[1])
	}
	if uc == nil {
		unix.Close(fds[0])
		return nil, req, nil, errors.New("malformed request")
	}
	fail := func(err error) (*net.UnixConn, runpool.Request, *os.File, error) {
		unix.Close(fds[0])
		return uc, runpool.Request{}, nil, err
	}
	switch {
	case cred == nil || cred.Uid != 0:
		return fail(errNotRoot)
	case flags&unix.MSG_TRUNC != 0 || len(b) > runpool.MaxRequest:
		return fail(errors.New("request too large"))
	}
	req, err = runpool.ParseRequest(b)
	if err != nil {
		return fail(err)
	}
	if len(req.Argv) == 0 {
		return fail(errors.New("no command"))
	}
	// Non-blocking, so closing it ends a read in progress; the pipe is
	// the client's own, made for this run.
	unix.SetNonblock(fds[0], true)
	return uc, req, os.NewFile(uintptr(fds[0]), "stdin"), nil
}

// frameWriter writes whole frames to the client, one at a time.
type frameWriter struct {
	mu   sync.Mutex
	c    *net.UnixConn
	fail error
}

func (f *frameWriter) write(kind byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	f.fail = runpool.WriteFrame(f.c, kind, p)
	return f.fail
}

// streamWriter passes a run's output on as frames; a client that stops
// reading ends the run.
type streamWriter struct {
	fw     *frameWriter
	kind   byte
	cancel context.CancelFunc
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.fw.write(w.kind, p); err != nil {
		w.cancel()
		return 0, err
	}
	return len(p), nil
}
