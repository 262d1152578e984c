//go:build linux

package cgroup

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// Run with: go test ./internal/cgroup -run '^$' -bench . -benchtime 200x
// The metrics are per-phase p50/p95 in microseconds; spawning and reaping
// the helper process is not timed.

var benchLimits = Limits{MemoryBytes: 256 << 20, CPUQuota: 1, Pids: 64}

func BenchmarkCreateDestroyV1(b *testing.B) { benchCreateDestroy(b, V1) }
func BenchmarkCreateDestroyV2(b *testing.B) { benchCreateDestroy(b, V2) }
func BenchmarkReuseV1(b *testing.B)         { benchReuse(b, V1) }
func BenchmarkReuseV2(b *testing.B)         { benchReuse(b, V2) }

// benchCreateDestroy times, per sandbox run: Create with limits, AddProc
// of a live process, Destroy (kill, wait empty, rmdir).
func benchCreateDestroy(b *testing.B, v Version) {
	h := requireHierarchy(b)
	requireVersion(b, h, v)
	var create, add, destroy []time.Duration
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		cmd := startSleeper(b)
		t0 := time.Now()
		c, err := h.Create(fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), benchLimits)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.AddProc(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := c.Destroy(ctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		_ = cmd.Wait() // killed by Destroy
		create = append(create, t1.Sub(t0))
		add = append(add, t2.Sub(t1))
		destroy = append(destroy, t3.Sub(t2))
	}
	report(b, "create", create)
	report(b, "addproc", add)
	report(b, "destroy", destroy)
}

// benchReuse times the pooled alternative on one cgroup: AddProc of a
// live process, Drain (kill, wait empty), Reset (re-apply limits, reset
// counters).
func benchReuse(b *testing.B, v Version) {
	h := requireHierarchy(b)
	requireVersion(b, h, v)
	c, err := h.Create(fmt.Sprintf("bench-reuse-%d", time.Now().UnixNano()), benchLimits)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Cleanup(func() {
		if err := c.Destroy(ctx); err != nil {
			b.Error(err)
		}
	})
	var add, drain, reset []time.Duration
	for b.Loop() {
		cmd := startSleeper(b)
		t0 := time.Now()
		if err := c.AddProc(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := c.Reset(benchLimits); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		_ = cmd.Wait() // killed by Drain
		add = append(add, t1.Sub(t0))
		drain = append(drain, t2.Sub(t1))
		reset = append(reset, t3.Sub(t2))
	}
	report(b, "addproc", add)
	report(b, "drain", drain)
	report(b, "reset", reset)
}

func startSleeper(b *testing.B) *exec.Cmd {
	cmd := exec.Command("/bin/sleep", "100")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

func report(b *testing.B, phase string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p int) float64 { return float64(s[(len(s)-1)*p/100].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(50), phase+"-p50-us")
	b.ReportMetric(pct(95), phase+"-p95-us")
}
