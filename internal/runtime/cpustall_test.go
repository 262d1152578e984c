package runtime

import (
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
)

func TestCPUStall(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name          string
		at            time.Duration
		cur           cgroup.CPUCounters
		stall, rescue bool
	}{
		{"first sample", 0, cgroup.CPUCounters{Usage: 100 * ms, Periods: 10, Throttled: 0}, false, false},
		{"busy, not throttled", 2, cgroup.CPUCounters{Usage: 900 * ms, Periods: 30, Throttled: 0}, false, false},
		{"busy and throttled", 4, cgroup.CPUCounters{Usage: 1900 * ms, Periods: 50, Throttled: 15}, false, false},
		{"stranded: no CPU, no period since", 6, cgroup.CPUCounters{Usage: 1900 * ms, Periods: 50, Throttled: 15}, true, true},
		{"after the rewrite, still idle", 8, cgroup.CPUCounters{Usage: 1900 * ms, Periods: 50, Throttled: 15}, false, false},
		{"idle, a few kernel wake-ups", 10, cgroup.CPUCounters{Usage: 1900*ms + 200*time.Microsecond, Periods: 50, Throttled: 15}, false, false},
		{"throttled in the interval without using CPU", 12, cgroup.CPUCounters{Usage: 1900*ms + 300*time.Microsecond, Periods: 70, Throttled: 35}, true, true},
		{"running again, throttled", 14, cgroup.CPUCounters{Usage: 2900 * ms, Periods: 90, Throttled: 40}, false, false},
		{"throttled 10 s after the last rewrite", 22, cgroup.CPUCounters{Usage: 3900 * ms, Periods: 110, Throttled: 60}, false, true},
		{"throttled again, rewritten 2 s ago", 24, cgroup.CPUCounters{Usage: 4900 * ms, Periods: 130, Throttled: 80}, false, false},
		{"busy, not throttled, long after", 40, cgroup.CPUCounters{Usage: 5900 * ms, Periods: 150, Throttled: 80}, false, false},
	}
	var s cpuStall
	for _, st := range steps {
		stall, rescue := s.check(st.cur, t0.Add(st.at*time.Second))
		if stall != st.stall || rescue != st.rescue {
			t.Errorf("%s: stall, rescue = %v, %v; want %v, %v", st.name, stall, rescue, st.stall, st.rescue)
		}
	}
}
