// Package poolserver is the daemon's side of the run pool (see
// internal/runpool): worker sandboxes kept ready for `soulbox run`.
package poolserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
	// Not through the umask: it is the process's, and sandboxes started
	// meanwhile would inherit it. Connections are checked (peerIsRoot)
	// from the first one on.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
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
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				s.log.Warn("run pool: accept", "err", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				s.serve(c)
			}()
		}
	}()
	return nil
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

// peerIsRoot reports whether the client runs as root: the socket is for
// `soulbox run`, which needs root anyway.
func peerIsRoot(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	return err == nil && cred.Uid == 0
}

// serve answers one request.
func (s *Server) serve(c *net.UnixConn) {
	defer c.Close()
	fw := &frameWriter{c: c}
	if !peerIsRoot(c) {
		fw.write(runpool.FrameCold, nil) // the client's own set-up reports what it lacks
		return
	}
	req, stdin, err := readRequest(c)
	if err != nil {
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

// readRequest reads the request frame (a 4-byte length and the request,
// see runpool.AppendRequest) and the stdin descriptor that comes with it.
func readRequest(c *net.UnixConn) (runpool.Request, *os.File, error) {
	buf := make([]byte, 4+runpool.MaxRequest)
	oob := make([]byte, unix.CmsgSpace(4))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return runpool.Request{}, nil, fmt.Errorf("read request: %w", err)
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	fail := func(err error) (runpool.Request, *os.File, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return runpool.Request{}, nil, err
	}
	if len(fds) != 1 || n < 4 {
		return fail(errors.New("malformed request"))
	}
	size := int(binary.BigEndian.Uint32(buf[:4]))
	if size > runpool.MaxRequest {
		return fail(errors.New("request too large"))
	}
	if n < 4+size {
		if _, err := io.ReadFull(c, buf[n:4+size]); err != nil {
			return fail(fmt.Errorf("read request: %w", err))
		}
	}
	req, err := runpool.ParseRequest(buf[4 : 4+size])
	if err != nil {
		return fail(err)
	}
	if len(req.Argv) == 0 {
		return fail(errors.New("no command"))
	}
	// Non-blocking, so closing it ends a read in progress; the pipe is
	// the client's own, made for this run.
	unix.SetNonblock(fds[0], true)
	unix.CloseOnExec(fds[0])
	return req, os.NewFile(uintptr(fds[0]), "stdin"), nil
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
