package test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

var syscallZero = syscall.Signal(0)

// TestDaemonFloods: huge and slow requests and connection floods against
// the daemon, then hostile programs in many sandboxes at once next to a
// benign one; HOST-OK after each.
func TestDaemonFloods(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, "--pool", "0")
	base := takeBaseline(t, d)
	addr := strings.TrimPrefix(d.url, "http://")

	t.Run("huge headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", d.url+"/v2/sandboxes", nil)
		req.Header.Set("X-API-Key", key)
		req.Header.Set("X-Filler", strings.Repeat("x", 200<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("200 KiB of headers: %d, want 431", resp.StatusCode)
		}
		hostOK(t, d, base, true)
	})

	t.Run("huge body", func(t *testing.T) {
		var e apiErr
		if st := d.call(key, "POST", "/sandboxes", `{"metadata":{"k":"`+strings.Repeat("x", 16<<20)+`"}}`, &e); st != 413 {
			t.Fatalf("16 MiB body: %d", st)
		}
		hostOK(t, d, base, true)
	})

	t.Run("slow and idle connections", func(t *testing.T) {
		// 100 connections that send half a request line and stall: the
		// daemon keeps serving others, and drops them at its header timeout.
		var conns []net.Conn
		for range 100 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "))
			conns = append(conns, c)
		}
		if st := d.call("", "GET", "/health", nil, nil); st != 200 {
			t.Fatalf("health during a slow-request flood: %d", st)
		}
		closed := 0
		deadline := time.Now().Add(20 * time.Second)
		for _, c := range conns {
			c.SetReadDeadline(deadline)
			if _, err := bufio.NewReader(c).ReadByte(); err != nil {
				closed++ // EOF or reset: the daemon gave up on it
			}
			c.Close()
		}
		if closed != len(conns) {
			t.Fatalf("%d of %d stalled connections were dropped", closed, len(conns))
		}
		hostOK(t, d, base, true)
	})

	t.Run("connection flood", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(d.url + "/health")
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		close(errs)
		n := 0
		for err := range errs {
			n++
			if n < 3 {
				t.Log(err)
			}
		}
		// Refusals by the host's listen backlog are allowed; errors from
		// the daemon are not.
		if n > 50 {
			t.Fatalf("%d of 1000 concurrent requests failed", n)
		}
		hostOK(t, d, base, true)
	})

	t.Run("hostile sandboxes next to a benign one", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		c := sdkClient(t, d, key)
		hostile := []string{
			"f(){ f|f& }; f", // fork bomb
			"python3 -c 'b=[]\nwhile True: b.append(bytearray(1<<24))'", // memory bomb
			"yes | head -c 3000000000",                                  // output flood
			"while :; do :; done",                                       // busy loop
			"dd if=/dev/zero of=/home/user/fill bs=1M",                  // disk fill
			"ulimit -n 100000 2>/dev/null; python3 -c 'import os\nwhile True: os.open(\"/dev/null\", os.O_RDONLY)'", // fd exhaustion
			"kill -9 -1; sleep 5",                            // kill everything it can
			"for i in $(seq 200); do sleep 100 & done; wait", // many processes
		}
		var sbxs []*soulbox.Sandbox
		for range 10 {
			s, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 5 * time.Minute, Limits: soulbox.Limits{MemoryMB: 128, DiskSizeMB: 64, Pids: 128}})
			if err != nil {
				t.Fatal(err)
			}
			sbxs = append(sbxs, s)
		}
		benign, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		// 100 hostile commands at once, 10 per sandbox.
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hctx, hcancel := context.WithTimeout(ctx, 8*time.Second)
				defer hcancel()
				sbxs[i%10].Commands.Run(hctx, hostile[i%len(hostile)], soulbox.WithTimeout(6*time.Second), soulbox.WithoutCapture())
			}()
		}
		// Meanwhile the benign sandbox computes correctly.
		res, err := benign.Commands.Run(ctx, "python3 -c 'print(sum(range(10**6)))'")
		if err != nil || res.Stdout != "499999500000\n" {
			t.Fatalf("benign sandbox during the storm: %+v %v", res, err)
		}
		wg.Wait()
		for _, s := range append(sbxs, benign) {
			if err := s.Kill(ctx); err != nil && !strings.Contains(err.Error(), "not found") {
				t.Errorf("kill %s: %v", s.ID, err)
			}
		}
		hostOK(t, d, base, true)
	})
}
