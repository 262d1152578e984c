package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	goruntime "runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ErrPortClosed is returned by DialPort when nothing listens on the port.
var ErrPortClosed = errors.New("nothing listens on the port")

// DialPort connects to a TCP port listening inside the sandbox, on its
// loopback (127.0.0.1, then ::1): the socket is created inside the
// sandbox's network namespace, so it works whether or not the sandbox has
// egress, and it can reach nothing but the sandbox itself.
func (b *Sandbox) DialPort(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("bad port %d", port)
	}
	ns, err := b.openNetns()
	if err != nil {
		return nil, err
	}
	defer unix.Close(ns)
	return dialInNetns(ctx, ns, port)
}

// openNetns opens the network namespace of the sandbox's init. The
// /proc path names the init only while it lives, so the pidfd is checked
// after the open: a pid cannot be reused while the process the pidfd
// refers to has not exited, hence a live pidfd after the open means the
// namespace opened is the sandbox's.
func (b *Sandbox) openNetns() (int, error) {
	b.pidMu.RLock()
	defer b.pidMu.RUnlock()
	if b.pidfd < 0 {
		return -1, ErrGone
	}
	fd, err := unix.Open("/proc/"+strconv.Itoa(b.handle.Pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%w: %v", ErrGone, err)
	}
	if pidfdExited(b.pidfd) {
		unix.Close(fd)
		return -1, ErrGone
	}
	return fd, nil
}

// pidfdExited reports whether the process of a pidfd has exited (POLLIN).
func pidfdExited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}

// inNetns runs f on a locked OS thread that has joined the network
// namespace ns, then returns the thread to its own namespace. If the
// thread cannot go back, it stays locked and dies with the goroutine, so
// no other goroutine ever runs in the sandbox's namespace. Sockets f
// creates stay in ns after the thread leaves. (Go starts new threads from
// a clean template thread when the current one is locked, so threads the
// runtime creates meanwhile do not inherit ns.)
func inNetns(ns int, f func()) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("join sandbox network namespace: %w", err)
			return
		}
		f()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave sandbox network namespace: %w", err) // the thread stays locked and exits
			return
		}
		goruntime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

func dialInNetns(ctx context.Context, ns, port int) (net.Conn, error) {
	var (
		c   net.Conn
		err error
	)
	nerr := inNetns(ns, func() {
		// The dial parks this locked goroutine (not the process) until
		// the loopback answers, which is at once.
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if errors.Is(err, unix.ECONNREFUSED) {
			if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err6 == nil {
				c, err = c6, nil
			}
		}
	})
	if nerr != nil {
		if c != nil {
			c.Close()
		}
		return nil, nerr
	}
	if errors.Is(err, unix.ECONNREFUSED) {
		return nil, fmt.Errorf("%w: port %d", ErrPortClosed, port)
	}
	return c, err
}

// PortTransport returns the HTTP/1.1 transport (with its connection pool)
// to the sandbox's ports: a request for http://127.0.0.1:PORT/ goes to
// PORT inside the sandbox (DialPort). WebSocket upgrades pass through.
func (b *Sandbox) PortTransport() http.RoundTripper {
	b.portOnce.Do(func() {
		b.portT = &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				_, p, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				port, err := strconv.Atoi(p)
				if err != nil {
					return nil, err
				}
				return b.DialPort(ctx, port)
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			// A tenant's server answers whatever it likes: cap its headers.
			MaxResponseHeaderBytes: 1 << 20,
		}
	})
	return b.portT
}
