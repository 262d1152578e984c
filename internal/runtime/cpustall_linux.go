package runtime

import (
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
)

// cpuStall notices a sandbox whose tasks CFS throttling may have
// stranded: the task-based throttling of Linux 6.18 can leave throttled
// tasks parked for good (seen in TestThousandConcurrentHostile: a
// sandbox's agent and some tenant processes, runnable, using no CPU for a
// minute while the group's other tasks used its quota; rewriting the
// quota released them at once). Rewriting the quota unthrottles the
// group, so a sandbox is rescued:
//   - at once, when it was throttled yet used almost no CPU in an interval
//     (throttled in this interval, or in the last one with no bandwidth
//     period since): everything in it is stranded (a sandbox that merely
//     went idle after a busy spell matches too; the rewrite changes
//     nothing for it);
//   - every rescueEvery while it keeps being throttled, since a task
//     stranded among busy ones cannot be told apart from its counters.
//     Each rewrite refills the group's runtime, so a throttled sandbox
//     gets at most one period's quota more per rescueEvery (1 % at 10 s).
type cpuStall struct {
	mu        sync.Mutex
	prev      cgroup.CPUCounters
	valid     bool
	throttled bool      // throttled during the previous interval
	rescued   time.Time // last rewrite
}

// stallProgress is the CPU time below which a throttled cgroup counts as
// having made no progress in an interval (a quota gives even 0.01 cores
// 20 ms in the 2 s between the daemon's checks).
const stallProgress = time.Millisecond

// rescueEvery is how often a sandbox that keeps being throttled has its
// quota rewritten.
const rescueEvery = 10 * time.Second

// check compares cur (read at now) with the previous counters: stalled
// reports a stranded sandbox, rescue one whose quota is due a rewrite.
func (s *cpuStall) check(cur cgroup.CPUCounters, now time.Time) (stalled, rescue bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, valid := s.prev, s.valid
	s.prev, s.valid = cur, true
	if !valid {
		s.rescued = now
		return false, false
	}
	throttledNow := cur.Throttled > prev.Throttled
	idle := cur.Usage-prev.Usage < stallProgress
	stalled = idle && (throttledNow || (s.throttled && cur.Periods == prev.Periods))
	s.throttled = throttledNow && !stalled
	rescue = stalled || (throttledNow && now.Sub(s.rescued) >= rescueEvery)
	if rescue {
		s.rescued = now
	}
	return stalled, rescue
}

// UnstallCPU checks whether CFS throttling may have stranded the
// sandbox's tasks since the last call and, if so, releases them by
// rewriting its CPU quota (see cpuStall). stalled reports that every task
// was stranded, rewritten that the quota was rewritten. Call it every few
// seconds.
func (b *Sandbox) UnstallCPU() (stalled, rewritten bool, err error) {
	cur, err := b.sb.cg.CPUCounters()
	if err != nil {
		return false, false, err
	}
	stalled, rescue := b.stall.check(cur, time.Now())
	if !rescue {
		return false, false, nil
	}
	return stalled, true, b.sb.cg.RequeueCPU()
}
