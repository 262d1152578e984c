package test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// TestSoak (`make soak`, outside CI's time budget): 1,000 hostile runs in
// fresh sandboxes mixed with benign ones, 4 at a time; HOST-OK at the end,
// and the daemon's memory flat from the first 100 runs to the last.
// SOULBOX_SOAK=N sets the number of runs.
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SOULBOX_SOAK"))
	if n <= 0 {
		t.Skip("soak test: run `make soak` (SOULBOX_SOAK=1000)")
	}
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	c := sdkClient(t, d, key)
	base := takeBaseline(t, d)
	hostile := []string{
		"f(){ f|f& }; f", "python3 -c 'b=[]\nwhile True: b.append(bytearray(1<<24))'",
		"yes | head -c 1000000000", "while :; do :; done", "dd if=/dev/zero of=/home/user/fill bs=1M",
		"kill -9 -1; sleep 3", "for i in $(seq 100); do sleep 100 & done; wait",
	}
	ctx := context.Background()
	var next, failures atomic.Int64
	var rssAt100 int64
	var mu sync.Mutex
	worker := func() {
		for {
			i := next.Add(1) - 1
			if i >= int64(n) {
				return
			}
			s, err := c.Create(ctx, soulbox.CreateOptions{Timeout: time.Minute, Limits: soulbox.Limits{MemoryMB: 128, DiskSizeMB: 64, Pids: 128}})
			if err != nil {
				t.Errorf("run %d: create: %v", i, err)
				failures.Add(1)
				continue
			}
			if i%5 == 0 {
				res, err := s.Commands.Run(ctx, "echo $((40+2))")
				if err != nil || res.Stdout != "42\n" {
					t.Errorf("run %d: benign: %+v %v", i, res, err)
					failures.Add(1)
				}
			} else {
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				s.Commands.Run(hctx, hostile[int(i)%len(hostile)], soulbox.WithTimeout(3*time.Second), soulbox.WithoutCapture())
				cancel()
			}
			s.Kill(ctx)
			if (i+1)%100 == 0 {
				mu.Lock()
				_, _, rss := daemonState(t, d)
				if i+1 == 100 {
					rssAt100 = rss
				}
				t.Logf("%d runs: daemon RSS %d KiB", i+1, rss)
				mu.Unlock()
			}
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); worker() }()
	}
	wg.Wait()
	hostOK(t, d, base, false)
	if _, _, rss := daemonState(t, d); rssAt100 > 0 && rss > rssAt100+32<<10 {
		t.Errorf("daemon memory grew from %d KiB after 100 runs to %d KiB after %d", rssAt100, rss, n)
	}
	if failures.Load() > 0 {
		t.Fatalf("%d failures", failures.Load())
	}
	// Only the warm pool is left; SIGTERM ends it.
	d.stop(syscall.SIGTERM)
	hostClean(t, dir)
}
